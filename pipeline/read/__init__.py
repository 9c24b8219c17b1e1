"""Input shards to decoded samples: the shard list, the tar reader and the read-ahead threads."""
