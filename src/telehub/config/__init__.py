"""Settings: one object, read from ``TELEHUB_*`` variables and an optional TOML file.

Every default is the embedded one, so a fresh checkout runs with no services.
Nothing here reads the environment at import time: call :func:`load_settings`.

The fields are declared a group per module, the groups of the configuration
page (``docs/configuration.md``): ``database.py``, ``http_api.py``, ``ingest.py``,
``limits.py``, ``mqtt.py``, ``live.py``, ``grpc_server.py``, ``metrics.py``,
``rollups.py``, ``records.py``. ``settings.py`` joins them into the one
:class:`Settings`, with the checks across groups and the sources it is read from.
Import from here: ``from telehub.config import Settings, load_settings``.
"""

from __future__ import annotations

from telehub.config.settings import CONFIG_FILE_ENV, Settings, load_settings

__all__ = ["CONFIG_FILE_ENV", "Settings", "load_settings"]
