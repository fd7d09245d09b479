"""Terminals and geofences."""
