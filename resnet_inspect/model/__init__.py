"""Names -> specs -> modules: the grammar and registry, the layers, building, other sources, checkpoints."""
