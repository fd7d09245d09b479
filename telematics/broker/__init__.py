"""The project's Mosquitto broker: config and ACLs, terminal credentials, refusal monitor."""
