"""What the server commands run: the hub, its listeners, the database.

Only a server command's body imports from here (see telehub.cli.lazy): the
commands that talk to a hub over its API never load FastAPI, SQLAlchemy,
Alembic, gRPC or the MQTT brokers.
"""
