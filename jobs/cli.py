"""`nerve <command> [--config FILE] [key=value ...]`: dispatch to one module per command."""
from __future__ import annotations

import importlib
import sys

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
    "tune": "jobs.tune",  # pick refinement / upsampling / background settings on labelled shards (Ray Tune)
}

USAGE = "usage: nerve {" + ",".join(COMMANDS) + "} [--config FILE] [key=value ...]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"nerve: unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
