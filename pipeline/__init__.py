"""Distributed execution: shard reading, Ray actors, writers, scoring, progress."""
