"""The stand-in bench's Ray worker_process_setup_hook, kept free of heavy imports.

Every worker of the bench's Ray runs the hook at start-up, the progress counter's too; importing
the stand-in there would import torch and the engine's model libraries (about 6 CPU-seconds) in
processes that never build an engine. So the hook only watches for nerve_core.engine: the worker
that imports it (a labeler, building its engine) gets `build_engine` replaced by the stand-in's.
"""
from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder

ENGINE_MODULE = "nerve_core.engine"


def use_standin_in_this_worker() -> None:
    """Engines named `standin:R` can be built in this worker process, once it imports the engine."""
    if ENGINE_MODULE in sys.modules:
        _use_standin(sys.modules[ENGINE_MODULE])
    else:
        sys.meta_path.insert(0, _PatchEngineOnImport())


def _use_standin(engine_module) -> None:
    from pipeline.bench.standin import build_engine_or_standin

    engine_module.build_engine = build_engine_or_standin


class _PatchEngineOnImport(MetaPathFinder):
    """Finds nerve_core.engine the ordinary way, then patches the module right after it runs."""

    def find_spec(self, name, path=None, target=None):
        if name != ENGINE_MODULE:
            return None
        sys.meta_path.remove(self)  # one use; the ordinary finders take it from here
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _use_standin(module)

        spec.loader.exec_module = exec_module
        return spec
