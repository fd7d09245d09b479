"""Vehicles and drivers, and who may see a vehicle (visibility.py): the registry telematics and
dispatch both work on, in the kernel below them."""
