"""Usage standards (body types by passengers and nature) and provisioning standards, as data."""
