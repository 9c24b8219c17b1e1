"""Input shards to checked samples: the shard list, the tar reader, sample preparation before the
engine and the read-ahead threads."""
