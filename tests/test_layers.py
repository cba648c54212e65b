"""Layers point one way: remedies (the API) -> engine -> applications -> CLI,
with the shared helpers at the bottom. Every import counts, a lazy one inside a
function too."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"remedysweep.remedies": REPO / "remedies", "remedysweep.reports": REPO / "reports", "remedysweep": REPO / "runner"}

LAYER = {
    "remedysweep.errors": 0, "remedysweep.files": 0, "remedysweep.version": 0,
    "remedysweep.remedies": 1,
    "remedysweep.engine": 2,
    "remedysweep.reports": 3,
    "remedysweep.sweep": 4, "remedysweep.doctor": 4, "remedysweep.testing": 4, "remedysweep.keras": 4,
    "remedysweep.bench": 5, "remedysweep.cli": 5, "remedysweep": 5, "remedysweep.__main__": 5,
}
# Reading results (reports) sits under the applications that write them; the
# applications never use each other; the benchmark, like the command line, sits
# on top of them all (it times sweeps, doctor and Watch). No exceptions.


def modules():
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if package == "remedysweep" and parts and parts[0] in ("remedies", "reports"):
                continue
            yield ".".join([package, *parts]), path


def layer_of(module: str) -> tuple[int, str]:
    best = ""
    for prefix in LAYER:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYER[best], best


def imports(module: str, path: Path):
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def test_no_module_imports_upward():
    problems = []
    count = 0
    for module, path in modules():
        mine, my_prefix = layer_of(module)
        for target in imports(module, path):
            if not target.startswith("remedysweep"):
                continue
            count += 1
            theirs, their_prefix = layer_of(target)
            if my_prefix == their_prefix or mine == 5:
                continue
            if theirs > mine or theirs == mine == 4:
                problems.append(f"{module} imports {target}")
    assert count > 50
    assert not problems, problems


def test_only_the_run_queue_touches_optuna_internals():
    offenders = []
    for module, path in modules():
        text = path.read_text()
        if module != "remedysweep.engine.queue" and any(s in text for s in ("._storage", "._trial_id", "._study_id", "_get_stale_trial_ids")):
            offenders.append(module)
    assert not offenders, offenders
