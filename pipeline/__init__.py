"""Everything distributed or on disk, one sub-package per step of the flow:

sources/ (datasets -> WebDataset shards) -> read/ (shards -> decoded samples) -> run/ (the driver and
its Ray labeler actors) -> output/ (rows, masks, stats, the output directory) -> score/ (mIoU, verify)
-> report/; beside them bench/ (the performance harness) and tune/ (the walk's settings searched on
cached features). config.py and job.py are the typed job; storage.py and reasons.py serve them all.
"""
