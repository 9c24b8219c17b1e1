"""The performance harness behind `nerve bench`: refinement, engine and pipeline benchmarks.

Each benchmark module exposes a typed config dataclass and `run(cfg) -> dict` (the results that
`report.write_report` turns into JSON, a PNG plot and a printed table).
"""
