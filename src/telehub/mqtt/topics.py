"""The MQTT topic tree: one place that builds and parses every topic name.

Devices talk under ``telehub/v1/devices/{device_id}/…``; the device id in the
topic is the only device identity a bridge sees, so the broker's ACL must
tie it to the device's login (see the README's MQTT section).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from telehub.domain.rules import BAD_DEVICE_ID, is_device_id
from telehub.errors import FieldError, InvalidInput

ROOT = "telehub/v1/devices"


class TopicKind(StrEnum):
    TELEMETRY = "telemetry"
    STATE = "state"
    STATUS = "status"
    COMMAND_ACK = "ack"


_KINDS = {kind.value: kind for kind in TopicKind}

# Below telehub/v1/devices/{id}/: what a device publishes (and the bridge reads),
# as MQTT filters. The bridge's subscriptions and the broker ACLs derive from it.
UPLINK = ("telemetry", "state", "status", "commands/+/ack")
# The same, as a person reads them: what an error lists as accepted.
ACCEPTED_SUFFIXES = "telemetry, state, status, commands/{command_id}/ack"
# Below telehub/v1/devices/{id}/: the command topics (hub → device).
COMMAND = "commands/+"
COMMANDS = "commands/#"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    device_id: str
    kind: TopicKind
    command_id: str | None = None


def commands_prefix(device_id: str) -> str:
    return f"{ROOT}/{device_id}/commands/"


def command_topic(device_id: str, command_id: str) -> str:
    return f"{ROOT}/{device_id}/commands/{command_id}"


BRIDGES = "telehub/v1/bridges"


def heartbeat_topic(client_id: str) -> str:
    """Where a bridge publishes to itself; never shared, so each bridge hears its own."""
    safe = "".join("_" if c in "+#/$\x00" else c for c in client_id)
    return f"{BRIDGES}/{safe}/heartbeat"


def bridge_filters(shared_group: str | None) -> list[str]:
    """What the bridge subscribes to; ``$share/<group>/`` splits it across bridges."""
    filters = [f"{ROOT}/+/{kind}" for kind in UPLINK]
    if shared_group:
        return [f"$share/{shared_group}/{f}" for f in filters]
    return filters


# Topics parsed before: a device publishes to the same few again and again, and
# the answer is a frozen value. Bounded: cleared when full.
_PARSED: dict[str, DeviceTopic] = {}
_PARSED_MAX = 100_000


def parse_topic(name: str) -> DeviceTopic:
    """The device and message kind a topic addresses, or InvalidInput saying why not."""
    found = _PARSED.get(name)
    if found is None:
        found = _parse(name)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[name] = found
    return found


def _parse(name: str) -> DeviceTopic:
    parts = name.split("/")
    if len(parts) == 7 and parts[4] == "commands" and parts[6] == "ack" and parts[5]:
        parts, command_id = [*parts[:4], "ack"], parts[5]
    else:
        command_id = None
    if len(parts) != 5 or "/".join(parts[:3]) != ROOT or (parts[4] == "ack" and not command_id):
        raise InvalidInput(
            f"topic {name[:200]!r} is not {ROOT}/{{device_id}}/ followed by one of "
            f"{ACCEPTED_SUFFIXES}",
            [FieldError(detail="unknown topic", parameter="topic")],
        )
    device_id, kind = parts[3], parts[4]
    if not is_device_id(device_id):
        raise InvalidInput(
            f"{device_id[:80]!r} in the topic is not a device id",
            [FieldError(detail=BAD_DEVICE_ID, parameter="topic")],
        )
    known = _KINDS.get(kind)  # a dict, not TopicKind(kind): this runs for every message
    if known is None:
        raise InvalidInput(
            f"topic suffix {kind[:80]!r} is not one of {ACCEPTED_SUFFIXES}",
            [FieldError(detail="unknown topic kind", parameter="topic")],
        )
    return DeviceTopic(device_id, known, command_id)
