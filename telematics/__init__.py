"""Telematics: MQTT ingest, positions, trips, supervision rules, live fan-out."""
