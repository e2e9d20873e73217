"""The pipeline's decisions: detect, batch, process, route, archive, lineage."""
