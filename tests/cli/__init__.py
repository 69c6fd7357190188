"""The API-backed CLI commands (``telehub devices``, ``send``, ...) against a real server."""
