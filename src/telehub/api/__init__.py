"""FastAPI adapter: REST API v1, health and metrics. Parses, authenticates, calls the core."""
