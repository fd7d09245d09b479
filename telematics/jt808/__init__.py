"""The JT/T 808 gateway: terminals on TCP (2013 and 2019) into the shared ingest pipeline.

codec (framing) -> messages (bodies) -> session (one connection) -> batcher (commit, then
answer) -> the pipeline's checks, store and hooks (telematics/ingest/pipeline.py, commit.py);
commands relays the console's texts and position queries; links records who is online;
repository holds the SQL; server runs it all; cli gives `fleet jt808` and its demo
processes; terminal + simulate drive terminals for the demo, tests and benchmarks.
docs/jt808.md is the contract.
"""
