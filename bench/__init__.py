"""Benchmarks, one command each, printing a table.

Importing the package gives the run a live bus of its own: pub/sub channels are global to a
Redis server, so a bench beside a demo would otherwise hear the demo's positions and events
and push its own (vehicle ids that overlap the demo's) onto the demo's consoles. Every
process a bench starts inherits the prefix. Each bench also uses its own databases and, for
MQTT, a private broker on a free port (bench.ingest_common.rig).
"""

import os
import secrets

if not os.environ.get("FLEET_REDIS__CHANNEL_PREFIX", "").startswith("fleet-bench-"):
    os.environ["FLEET_REDIS__CHANNEL_PREFIX"] = f"fleet-bench-{secrets.token_hex(4)}"
