"""What a labeler writes and how it is read back: Parquet rows, mask codecs, stats, the summary, the
fingerprint and the one reader of an output directory."""
