"""What the bridge and the dynamic-security provisioner both need around gmqtt."""

from __future__ import annotations

import asyncio
import logging

import gmqtt

log = logging.getLogger(__name__)

_DISCONNECT_TIMEOUT = 2.0
# CONNACK codes meaning "these credentials will never work" (MQTT 3.1.1 and 5).
LOGIN_REFUSED = frozenset({4, 5, 134, 135})


async def disconnect_quietly(client: gmqtt.Client) -> None:
    """Close the client's connection, whatever state it is in, within a bound.

    After a refused CONNACK the broker has closed its end but ours stays open
    until closed (a ResourceWarning otherwise), and gmqtt can wait long on it.
    """
    try:
        await asyncio.wait_for(client.disconnect(), _DISCONNECT_TIMEOUT)
    except Exception:  # the connection may never have opened; nothing to save
        log.debug("MQTT disconnect did not complete cleanly", exc_info=True)
