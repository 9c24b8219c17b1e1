"""`nerve <command> [--config FILE] [key=value ...]`: dispatch to one module per command.

Expected failures (`NerveError`: a wrong key, a missing file or model, a conflicting output
directory) print one line, `nerve: ...`, and exit 2; a job a signal stopped prints one line and exits
75 (jobs.outcome); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import importlib
import sys

from jobs.outcome import RESUME_EXIT, JobInterrupted
from nerve_core.errors import NerveError

# command -> module exposing `main(argv: list[str]) -> int`
COMMANDS = {
    "label": "jobs.label",
    "score": "jobs.score",
    "shards": "jobs.shards",
    "export": "jobs.export",
    "regress": "jobs.regress",
    "bench": "jobs.bench",
    "verify": "jobs.verify",
    "demo": "jobs.demo",
    "tune": "jobs.tune",
    "evaluate": "jobs.evaluate",
    "report": "jobs.report",
}
SUMMARIES = {
    "label": "label WebDataset shards with an engine on Ray (a local Ray, or a cluster with ray.address)",
    "score": "re-score an output directory against the ground truth in its shards; rewrite summary.json",
    "shards": "make input shards from VOC, COCO, ADE20K, Cityscapes, COCO-Stuff, PASCAL Context, a folder of images, "
              "or the synthetic demo set",
    "export": "write a labeling run as PNG label maps (png) or one COCO results file (coco)",
    "regress": "the nightly check: label a pinned shard set, compare mIoU with a baseline, write a report",
    "bench": "time the refinement, the engine, the whole pipeline or the shard makers (refine | engine | pipeline | gpu | sweep | shards)",
    "verify": "check that every input sample has exactly one row in an output directory",
    "demo": "the whole tool offline in a minute: synthetic shards, tiny models, label, score, report",
    "tune": "pick the walk's open settings on labelled shards: cache features once, search them with Ray Tune",
    "evaluate": "one engine over several datasets (a label job each), its mIoU beside the papers' tables",
    "report": "a browsable report of a run's labels (local folder, opens from disk): worst images first, errors, figures",
}
HELP_FLAGS = ("-h", "--help")
USAGE = "usage: nerve {" + ",".join(COMMANDS) + "} [--config FILE] [key=value ...]  (nerve --help lists them)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in HELP_FLAGS:
        from jobs.help import general_help

        print(general_help(COMMANDS, SUMMARIES), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"nerve: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command])
    if any(arg in HELP_FLAGS for arg in rest):
        from jobs.help import command_help

        sub = next((a for a in rest if "=" not in a and not a.startswith("-")), None)
        print(command_help(command, module, sub, SUMMARIES.get(command, "")))
        return 0
    try:
        return int(module.main(rest) or 0)
    except NerveError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return 2
    except JobInterrupted as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return RESUME_EXIT


if __name__ == "__main__":
    sys.exit(main())
