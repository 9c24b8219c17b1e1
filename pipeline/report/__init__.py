"""Run reports: baseline comparison, Markdown / HTML pages (IoU chart, contact sheet), JUnit XML.

Used by `nerve regress` (with a baseline) and `nerve demo` (without one). Reads only an output
directory and its input shards, so a report can be written for any finished labeling run.
"""
