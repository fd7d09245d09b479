"""Stored positions: their flag bits, track/trip/stop/mileage queries, partition maintenance."""
