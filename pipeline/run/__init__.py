"""The label job on Ray: checks before Ray starts, the driver and its pool of Labeler actors, retries,
progress and per-stage CPU accounting."""
