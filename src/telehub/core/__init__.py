"""The transport-free core: ingest pipeline and services. No HTTP, MQTT or gRPC here."""
