"""Scoring against ground truth (confusion matrices, mIoU), re-scoring a directory, verifying it."""
