"""`nerve tune`: cache the models' features of labelled shards once, then search the refinement,
upsampling and background settings on Ray Tune trials that only read the cache."""
