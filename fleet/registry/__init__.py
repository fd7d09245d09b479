"""Vehicles and drivers: the registry the dispatch business works on."""
