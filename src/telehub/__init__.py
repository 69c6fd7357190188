"""telehub: a self-hosted IoT telemetry and device-control hub."""

__all__ = ["__version__"]

__version__ = "0.1.0"
