"""Dataset sources: iterate a dataset on disk and yield `ShardSample`s for `write_shards`.

One module per layout (VOC, COCO, a plain folder). Every source reports the samples it cannot use
to a `SkipLog` instead of failing, so one bad file never stops a conversion of 100k images.
"""
