"""The ingest: the ping contract, the pipeline's stages, the hot-path store, the MQTT transport."""
