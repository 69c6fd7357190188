"""Generated protobuf and gRPC code of the ``telehub.v1`` API: edit ``proto/``, run ``make proto``.

Only ``__init__.py`` is written by hand; ``make test`` fails when the rest is stale.
"""
