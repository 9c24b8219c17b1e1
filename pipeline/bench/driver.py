"""`nerve bench driver`: the label job's driver at scale, on simulated actors and a simulated store.

Each (shards, actors) configuration runs the driver's own code (run_pending, ShardPool, the run
index, write_summary) over a discrete-event stand-in for Ray (pipeline/bench/driver_sim.py) and an
object store whose every request costs `latency_ms` (pipeline/bench/sim_store.py), in a process of
its own (pipeline/bench/driver_case.py) so that each peak RSS is its own. With `calibrate=N`, a real
local Ray run of N one-sample shards on the stand-in engine is measured too, with the simulation of
the same shards beside it: how close the simulation's driver CPU per shard event is to the real
one (docs/benchmarks.md, "The driver at scale").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields

from pipeline.bench.driver_calibrate import real_run
from pipeline.bench.driver_case import DriverSettings
from pipeline.bench.driver_sim import SimBehaviour
from pipeline.source_path import source_pythonpath


@dataclass
class DriverBenchConfig(DriverSettings):
    output: str = "bench-results/driver"
    shards: list[int] = field(default_factory=lambda: [10_000])
    actors: list[int] = field(default_factory=lambda: [10, 1000])
    behaviour: SimBehaviour = field(default_factory=lambda: SimBehaviour(death_rate=0.001, hang_rate=0.0002))
    calibrate: int = 0  # > 0: also a real local Ray run of this many one-sample shards (and its simulation)
    calibrate_actors: int = 2


def case_settings(cfg: DriverBenchConfig, shards: int, actors: int, **changes) -> dict:
    """One configuration's settings as JSON (DriverCase.from_json reads them)."""
    settings = {f.name: getattr(cfg, f.name) for f in fields(DriverSettings)}
    return {**settings, "behaviour": asdict(cfg.behaviour), "shards": shards, "actors": actors, **changes}


def run_case(settings: dict) -> dict:
    """One configuration in a fresh process (its peak RSS its own)."""
    env = {**os.environ, "PYTHONPATH": source_pythonpath()}
    done = subprocess.run([sys.executable, "-m", "pipeline.bench.driver_case", json.dumps(settings)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"driver case {settings['shards']} shards x {settings['actors']} actors failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(cfg: DriverBenchConfig) -> dict:
    cases = []
    for actors in cfg.actors:
        for shards in cfg.shards:
            cases.append(run_case(case_settings(cfg, shards, actors)))
            print(f"{shards} shards x {actors} actors: {cases[-1]['driver_cpu_ms_per_event']:.3f} ms CPU per shard event",
                  flush=True)
    return {
        "benchmark": "driver",
        "config": asdict(cfg),
        "load_average": os.getloadavg(),
        "cases": cases,
        "calibration": calibrate(cfg) if cfg.calibrate else None,
    }


def calibrate(cfg: DriverBenchConfig) -> dict:
    """The real run and the simulation of the same shards (one sample each, local disk: no latency,
    shards as long as the real ones, no deaths); `ratio`: simulated over real CPU per shard event."""
    real = real_run(cfg.calibrate, cfg.calibrate_actors, cfg.classes)
    behaviour = SimBehaviour(shard_seconds=real["seconds_per_shard_per_actor"], seed=cfg.behaviour.seed)
    simulated = run_case(case_settings(cfg, cfg.calibrate, cfg.calibrate_actors, latency_ms=0.0, samples=1,
                                       behaviour=asdict(behaviour)))
    return {"real": real, "simulated": simulated,
            "ratio": simulated["driver_cpu_ms_per_event"] / real["driver_cpu_ms_per_event"]}
