"""MQTT: the bridge (broker → core), the topic tree and the embedded development broker."""
