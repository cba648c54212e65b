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


# ----------------------------------------------------------------------------
# One guard for files: only files.py touches a path
# ----------------------------------------------------------------------------

#: Calls that read or write a file by path. ``open`` is the builtin (``x.open``
#: is a storage or an archive member); ``save`` is a Keras model's; ``to_csv``
#: counts only with a path (without one it returns the text).
PATH_METHODS = {"read_text", "write_text", "read_bytes", "write_bytes", "savez", "savez_compressed", "read_csv"}


def _file_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "open":
            found.append((node.lineno, "open("))
        elif isinstance(f, ast.Attribute):
            owner = f.value.id if isinstance(f.value, ast.Name) else ""
            if f.attr in PATH_METHODS:
                buffer = node.args and isinstance(node.args[0], ast.Call) and getattr(node.args[0].func, "attr", "") in ("StringIO", "BytesIO")
                if not buffer:  # pandas reading text already in memory
                    found.append((node.lineno, f".{f.attr}("))
            elif f.attr == "load" and owner in ("np", "numpy", "pickle", "cloudpickle"):
                found.append((node.lineno, f"{owner}.load("))
            elif f.attr == "save" and owner in ("model", "keras"):
                found.append((node.lineno, f"{owner}.save("))
            elif f.attr == "to_csv" and (node.args or any(k.arg == "path_or_buf" for k in node.keywords)):
                found.append((node.lineno, ".to_csv(path)"))
    return found


def test_only_files_py_reads_or_writes_a_path():
    """Every file remedysweep reads or writes goes through files.py, where a
    path is checked once (a regular file, bounded, never through a link that
    leaves its folder, written atomically): no module opens one on its own."""
    offenders = []
    for module, path in modules():
        if module == "remedysweep.files":
            continue
        for line, call in _file_calls(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(REPO)}:{line}: {call}")
    assert not offenders, "\n".join(offenders)
    # the scan sees what it looks for: files.py itself has each kind
    seen = {call for _, call in _file_calls(ast.parse((REPO / "runner" / "files.py").read_text()))}
    assert {"open(", "np.load(", "model.save("} <= seen, seen
