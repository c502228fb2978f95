"""The package's layers, read from the source (every import statement, also those inside functions): nothing
imports upward, no two modules import each other in a circle, and the bottom stays free of torch.

A layer lists units: a subpackage (`train`) or a top-level module (`config`). A unit may import its own
modules and any unit of a lower layer; two units of one layer never import each other. The root
`gptlab/__init__.py` is the public facade above everything: it imports only `version` when it loads
(every `import gptlab.x` runs it), reaches upward lazily, and only the top layer imports it.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gptlab"

LAYERS: list[tuple[str, ...]] = [
    ("version", "errors"),
    ("yamlio", "registry", "sync"),
    ("store",),                                  # the run store: torch-free, at the bottom
    ("stats",),                                  # pure statistics: nothing of frames, report or the trainer
    ("axes",),
    ("plugins",),                                # below config: config loads plugins, not the reverse
    ("config",),
    ("overrides", "dataset", "sample", "wandb_log"),
    ("model",),
    ("trained",),                                # a checkpoint read back: below the trainer and the report
    ("train", "frames"),                         # frames read the store, never the trainer
    ("diagnostics", "jobs", "pack", "report"),   # the report: frames and stats in words and pictures
    ("analysis",),                               # the one-release shim of 0.3's gptlab.analysis
    ("runner", "sweep"),
    ("bench", "study"),                          # a study may import runner, jobs, store, frames and stats
    ("cli",),
    ("__main__",),
]
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}
TOP = len(LAYERS) - 1
TORCH_FREE = ("version", "errors", "yamlio", "registry", "store", "axes", "plugins", "config")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, int, bool]]:
    """(imported gptlab module, line, at load time) for every import in module `name`; `from a import b`
    counts as importing `a.b` when that is a module, else `a`."""
    path = modules()[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    at_load = {id(n) for n in tree.body} | {id(n) for top in tree.body if isinstance(top, (ast.If, ast.Try))
                                             for n in ast.walk(top)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names]
        else:
            continue
        out += [(t, node.lineno, id(node) in at_load) for t in targets if t.split(".")[0] == "gptlab"]
    return out


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gptlab"


@cache
def graph() -> dict[str, set[str]]:
    return {name: {t for t, _, _ in imports(name) if t in modules() and t != name} for name in modules()}


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(m) for m in modules()} - {"gptlab"}
    assert units <= set(LEVEL), f"place {sorted(units - set(LEVEL))} in a layer of tests/test_layers.py"


def test_nothing_imports_upward_or_sideways() -> None:
    wrong = []
    for name in modules():
        unit = unit_of(name)
        for target, line, at_load in imports(name):
            to = unit_of(target)
            if unit == "gptlab":  # the facade: only `version` while loading, anything lazily
                ok = not at_load or to == "version"
            elif to == "gptlab":
                ok = LEVEL.get(unit) == TOP or unit == "cli"
            else:
                ok = to == unit or LEVEL.get(to, TOP + 1) < LEVEL.get(unit, -1)
            if not ok:
                wrong.append(f"{modules()[name].relative_to(PACKAGE.parent)}:{line} {name} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph: every one must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph()[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(modules())))
    for v in sorted(graph()):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_bottom_imports_no_torch() -> None:
    heavy = [f"{modules()[name].relative_to(PACKAGE.parent)}:{node.lineno}"
             for name in modules() if unit_of(name) in TORCH_FREE
             for node in ast.walk(ast.parse(modules()[name].read_text()))
             if isinstance(node, (ast.Import, ast.ImportFrom))
             and any((getattr(node, "module", None) or a.name).split(".")[0] in ("torch", "numpy", "pandas")
                     for a in node.names)]
    assert not heavy, heavy
    loads = {"gptlab.store, gptlab.config, gptlab.plugins": ("torch", "numpy"),
             "gptlab.train.provenance": ("gptlab.frames", "gptlab.stats", "gptlab.report", "gptlab.runner", "gptlab.sweep")}
    for modules_, unwanted in loads.items():  # each in a fresh process: what importing it loads
        code = f"import sys, {modules_}; print(sorted(m for m in sys.modules if m.startswith({unwanted!r})))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]", f"import {modules_} loads {out.stdout.strip()}"


@pytest.mark.parametrize("rule", ["upward", "cycle"])
def test_the_checks_catch_a_planted_violation(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks themselves can fail: an analysis module importing the trainer, a store module importing
    a module that imports it back."""
    real = imports
    graph.cache_clear()
    extra = {"upward": {"gptlab.stats.summary": "gptlab.train.trainer"},
             "cycle": {"gptlab.config": "gptlab.store.files", "gptlab.store.files": "gptlab.config"}}[rule]
    monkeypatch.setattr(sys.modules[__name__], "imports",
                        lambda name: real(name) + ([(extra[name], 1, True)] if name in extra else []))
    try:
        with pytest.raises(AssertionError):
            (test_nothing_imports_upward_or_sideways if rule == "upward" else test_no_import_cycles)()
    finally:
        graph.cache_clear()


# the reading side's three layers (frames -> stats -> report): beyond the layer order above, frames and stats
# never meet, and stats stays pure
APART = {"frames": ("stats", "report"), "stats": ("frames", "report")}
IMPURE_CALLS = ("open", "read_text", "write_text", "read_bytes", "write_bytes", "to_csv", "savefig", "mkdir")


def test_frames_and_stats_keep_apart() -> None:
    wrong = [f"{name} -> {target}" for name in modules() if unit_of(name) in APART
             for target, _, _ in imports(name) if unit_of(target) in APART[unit_of(name)]]
    assert not wrong, wrong


def test_stats_is_pure() -> None:
    """No plotting library, no file I/O in gptlab/stats/: numbers in, numbers out."""
    found = []
    for name in modules():
        if unit_of(name) != "stats":
            continue
        for node in ast.walk(ast.parse(modules()[name].read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [getattr(node, "module", None) or a.name for a in node.names]
                found += [f"{name} imports {m}" for m in mods if m.split(".")[0] in ("matplotlib", "pathlib")]
            elif isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if called in IMPURE_CALLS:
                    found.append(f"{name}:{node.lineno} calls {called}")
    assert not found, found


def test_no_folder_outgrows_a_fifth_of_the_package() -> None:
    lines = {p: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    total = sum(lines.values())
    by_folder: dict[str, int] = {}
    for p, n in lines.items():
        rel = p.relative_to(PACKAGE).parts
        if len(rel) > 1:
            by_folder[rel[0]] = by_folder.get(rel[0], 0) + n
    big = {k: round(v / total, 3) for k, v in by_folder.items() if v > 0.2 * total}
    assert not big, f"folders over 20% of gptlab's {total} lines: {big}"
    long = {str(p.relative_to(PACKAGE)): n for p, n in lines.items() if n > 420}
    assert not long, f"modules over ~400 lines: {long}"
    crowded = {str(d.relative_to(PACKAGE)): n for d in [PACKAGE, *PACKAGE.rglob("*/")] if d.is_dir()
               and (n := len([p for p in d.glob("*.py") if p.name != "__init__.py"])) > 16 and d != PACKAGE}
    assert not crowded, f"folders of more than ~15 modules: {crowded}"
