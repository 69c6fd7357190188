"""What each dynamic-security role may do: a device its own topics, the bridge all uplinks.

Mosquitto 2.0's plugin matches ACL topics literally (on 2.0.11 a role holding
``telehub/v1/devices/%u/#`` denies a device its own topic), so every device
has a role of its own with its id written into the topics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from telehub.mqtt.topics import BRIDGES, COMMAND, COMMANDS, ROOT, UPLINK

BRIDGE_ROLE = "telehub-bridge"
DEVICE_ROLE_PREFIX = "telehub-device-"

# Allows are checked before the catch-all denies, so a login may use only
# what its role names, whatever defaultACLAccess the broker was set up with.
_ALLOW_PRIORITY = 10
_DENY_PRIORITY = 0
_ACL_TYPES = ("publishClientSend", "publishClientReceive", "subscribePattern")

Acl = dict[str, Any]


def device_role(device_id: str) -> str:
    return f"{DEVICE_ROLE_PREFIX}{device_id}"


def device_acls(device_id: str) -> list[Acl]:
    """A device publishes its uplink and receives its commands, nothing else."""
    own = f"{ROOT}/{device_id}"
    return [
        *(_allow("publishClientSend", f"{own}/{kind}") for kind in UPLINK),
        _allow("subscribePattern", f"{own}/{COMMANDS}"),
        _allow("publishClientReceive", f"{own}/{COMMANDS}"),
        *_deny_all(),
    ]


def bridge_acls() -> list[Acl]:
    """Every device's uplink, plainly or as ``$share/<group>/…`` (Mosquitto 2.0
    checks a shared subscription's full filter), and commands to any device."""
    uplink = [f"{ROOT}/+/{kind}" for kind in UPLINK]
    return [
        *(_allow("subscribePattern", f) for f in uplink),
        *(_allow("subscribePattern", f"$share/+/{f}") for f in uplink),
        *(_allow("publishClientReceive", f) for f in uplink),
        _allow("publishClientSend", f"{ROOT}/+/{COMMAND}"),
        # Each bridge's heartbeat to itself (topics.heartbeat_topic).
        _allow("subscribePattern", f"{BRIDGES}/+/heartbeat"),
        _allow("publishClientSend", f"{BRIDGES}/+/heartbeat"),
        _allow("publishClientReceive", f"{BRIDGES}/+/heartbeat"),
        *_deny_all(),
    ]


def _allow(acltype: str, topic: str) -> Acl:
    return {"acltype": acltype, "topic": topic, "priority": _ALLOW_PRIORITY, "allow": True}


def _deny_all() -> list[Acl]:
    return [
        {"acltype": t, "topic": "#", "priority": _DENY_PRIORITY, "allow": False} for t in _ACL_TYPES
    ]


def acl_set(acls: Iterable[Acl]) -> set[tuple[str, str, int, bool]]:
    return {(a["acltype"], a["topic"], int(a.get("priority", 0)), bool(a["allow"])) for a in acls}
