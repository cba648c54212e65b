"""``remedysweep remedies``: list every installed remedy."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "remedies"


def add_parser(sub: Any) -> None:
    rem = sub.add_parser(NAME, help="list every installed remedy")
    rem.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="also load remedies from a local file")


def table(plugins: list[str]) -> tuple[list[str], list[str]]:
    """The listing's lines and the plugin errors."""
    from remedysweep.remedies import discover

    registry = discover(plugin_files=plugins)
    rows = [(name, registry.sources[name], r.space.describe(), repr(r.baseline), r.description) for name, r in registry.remedies.items()]
    headers = ("name", "source", "values", "baseline", "description")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers[:4])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:4], widths)) + "  " + headers[4]]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return lines, [str(e) for e in registry.errors]


def main(args: argparse.Namespace) -> int:
    from remedysweep.cli import safe, say

    lines, errors = table(args.plugin)
    print("\n".join(safe(line) for line in lines))
    for err in errors:
        say(f"remedysweep: error: {err}")
    return 0
