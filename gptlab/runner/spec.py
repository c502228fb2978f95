"""Experiment specs: one YAML file -> variants x grid x seeds runs, validated as a whole up front.

Every error names the spec file and the YAML line of the offending key, so nothing is written to the
store until the whole study is known to be runnable.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.config import RunConfig, build_config, flatten_overrides
from gptlab.errors import ConfigError, UserError, closest
from gptlab.overrides import format_value
from gptlab.yamlio import line_of, load_yaml

TOP_KEYS = ("name", "description", "base", "grid", "variants", "seeds", "compare")
COMPARE_KEYS = ("metric", "goal", "baseline", "margin", "correction")
CORRECTIONS = ("holm", "bh", "none")  # multiple-comparison adjustment over all tests of one report
NAME_RE = re.compile(r"[A-Za-z0-9_][\w.+=]*")


@dataclass(frozen=True)
class Compare:
    metric: str = "val/loss"
    goal: str = "minimize"
    baseline: str | None = None
    margin: float | None = None  # equivalence margin in metric units; None: the report's default
    correction: str = "holm"


@dataclass(frozen=True)
class PlannedRun:
    name: str
    variant: str | None
    seed: int
    overrides: dict[str, Any]   # keys that differ from the spec's base: variant, grid, seed
    flat: dict[str, Any]        # every key this run sets: base, variant, grid, seed, --set
    config: RunConfig


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    description: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    variants: dict[str, dict[str, Any]]
    seeds: tuple[int, ...]
    compare: Compare
    raw: dict[str, Any] = field(repr=False)
    runs: tuple[PlannedRun, ...] = ()


def load_spec(path: str | Path, sets: dict[str, Any] | None = None) -> Spec:
    """Parse, validate and expand a spec; UserError (file:line) on the first problem."""
    path = Path(path)
    data, lines = load_yaml(path)
    src = str(path)

    def fail(message: str, key_path: tuple[str, ...] = (), fix: str | None = None, key: str | None = None):
        raise UserError(message, source=src, line=line_of(lines, key_path) if key_path else None,
                        key=key or ".".join(key_path) or None, fix=fix)

    if not isinstance(data, dict):
        fail("a spec must be a mapping with name, base, grid, variants, seeds, compare", fix="see experiments/")
    for key in data:
        if key not in TOP_KEYS:
            fail("unknown spec key", (str(key),), closest(str(key), TOP_KEYS))
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        fail("spec needs a name made of letters, digits, '_', '.', '-'", ("name",), "e.g. name: lr_sweep",
             key="name")
    description = data.get("description") or ""
    if not isinstance(description, str):
        fail("description must be text", ("description",), "write description: some text")

    base = _mapping(data.get("base"), ("base",), fail)
    base_flat = _flat(base, ("base",), lines, src)
    grid = _grid(data.get("grid"), lines, src, fail)
    variants = _variants(data.get("variants"), lines, src, fail)
    seeds = _seeds(data.get("seeds", [0]), fail)
    compare = _compare(data.get("compare"), variants, fail)
    for key in ("seed",):
        if key in grid or key in base_flat or any(key in v for v in variants.values()):
            fail("seeds are set by the spec's `seeds` list", fix="move them to seeds: [...]", key=key)

    try:
        sets = flatten_overrides(sets or {})
    except ConfigError as err:
        raise err.located("--set") from None
    if "seed" in sets:
        raise UserError("seeds are set by the spec's `seeds` list", source="--set", key="seed",
                        fix=f"edit seeds: [...] in {src}")
    runs = []
    names: dict[str, tuple[str, ...]] = {}
    for vname, vflat in (variants.items() or [(None, {})]):
        for point in _product(grid):
            for seed in seeds:
                overrides = {**vflat, **point, "seed": seed}
                flat = {**base_flat, **overrides, **sets}
                try:
                    config = build_config(flat)
                except ConfigError as err:
                    if err.key in sets:
                        raise err.located("--set") from None
                    kp = _origin(err.key, vname, vflat, point, base_flat)
                    fail(f"{err.message} (in run {_run_name(vname, point, seed)})", kp, err.fix, key=err.key)
                coerced = config.flat()  # names from typed values: '1e-3' and 0.001 name the same run
                run_name = _run_name(vname, {k: coerced[k] for k in point}, seed)
                where = ("variants", vname) if vname else ("grid",) if point else ("seeds",)
                if run_name in names:
                    fail(f"duplicate run name '{run_name}'", where, "make variant names and grid values distinct")
                names[run_name] = where
                runs.append(PlannedRun(run_name, vname, seed, overrides, flat, config))
    _check_runnable(runs, src)
    return Spec(path, name, description, base_flat, grid, variants, seeds, compare, data, tuple(runs))


def _check_runnable(runs: list[PlannedRun], src: str) -> None:
    """What only the machine can tell: the data files exist and are large enough, the devices exist."""
    from gptlab.dataset import load_data
    from gptlab.train.device import pick_device

    checked: set = set()
    for run in runs:
        data, model, train = run.config.data, run.config.model, run.config.train
        key = (data.path, data.val_fraction, model.block_size, train.device)
        if key in checked:
            continue
        checked.add(key)
        try:
            pick_device(train.device)
            load_data(data, model.block_size)
        except UserError as err:
            raise UserError(f"{err.message} (in run {run.name})", source=src, key=err.key, fix=err.fix) from None


def _mapping(value: Any, key_path: tuple[str, ...], fail) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(f"expected a mapping, got {type(value).__name__}", key_path, "write key: value pairs")
    return value


def _flat(value: dict[str, Any], prefix: tuple[str, ...], lines, src: str) -> dict[str, Any]:
    try:
        return flatten_overrides(value)
    except ConfigError as err:
        parts = tuple((err.key or "").split("."))
        raise UserError(err.message, source=src, line=line_of(lines, prefix + parts),
                        key=".".join(prefix + parts), fix=err.fix) from None


def _grid(value: Any, lines, src: str, fail) -> dict[str, list[Any]]:
    grid = _mapping(value, ("grid",), fail)
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if not isinstance(values, list):
            fail("a grid key takes a list of values", ("grid", str(key)), f"write {key}: [a, b, c]")
        if not values:
            fail("empty grid list", ("grid", str(key)), "give at least one value or remove the key")
        if len(set(map(repr, values))) != len(values):
            fail("repeated value in grid list", ("grid", str(key)), "list each value once")
        flat = _flat({key: values[0]}, ("grid",), lines, src)
        out[next(iter(flat))] = values
    return out


def _variants(value: Any, lines, src: str, fail) -> dict[str, dict[str, Any]]:
    variants = _mapping(value, ("variants",), fail)
    out = {}
    for vname, body in variants.items():
        vname = str(vname)
        if not NAME_RE.fullmatch(vname) or "-" in vname:
            fail(f"invalid variant name '{vname}'", ("variants", vname), "use letters, digits and '_'")
        out[vname] = _flat(_mapping(body, ("variants", vname), fail), ("variants", vname), lines, src)
    return out


def _seeds(value: Any, fail) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            for s in value):
        fail("seeds must be a non-empty list of integers", ("seeds",), "write seeds: [0, 1, 2]")
    if len(set(value)) != len(value):
        fail("repeated seed", ("seeds",), "list each seed once")
    return tuple(value)


def _compare(value: Any, variants: dict[str, Any], fail) -> Compare:
    compare = _mapping(value, ("compare",), fail)
    for key in compare:
        if key not in COMPARE_KEYS:
            fail("unknown compare key", ("compare", str(key)), closest(str(key), COMPARE_KEYS))
    out = Compare(**compare)
    if not isinstance(out.metric, str) or not out.metric:
        fail("compare.metric must name a metric", ("compare", "metric"), "e.g. metric: val/loss")
    if out.goal not in ("minimize", "maximize"):
        fail(f"invalid choice '{out.goal}'", ("compare", "goal"), "choose one of: minimize, maximize")
    if out.baseline is not None and out.baseline not in variants:
        fail(f"baseline '{out.baseline}' is not a variant", ("compare", "baseline"),
             closest(str(out.baseline), variants) if variants else "define variants or drop the baseline")
    if out.margin is not None and (isinstance(out.margin, bool) or not isinstance(out.margin, (int, float))
                                   or not 0 <= out.margin < float("inf")):
        fail(f"invalid margin '{out.margin}'", ("compare", "margin"),
             "give a non-negative number in metric units, e.g. margin: 0.02")
    if out.correction not in CORRECTIONS:
        fail(f"invalid choice '{out.correction}'", ("compare", "correction"),
             "choose one of: " + ", ".join(CORRECTIONS))
    return out


def _product(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _run_name(variant: str | None, point: dict[str, Any], seed: int) -> str:
    parts = ([variant] if variant else []) + [f"{k}={format_value(v)}" for k, v in point.items()] + [f"seed{seed}"]
    return "-".join(parts)


def _origin(key: str | None, vname, vflat, point, base_flat) -> tuple[str, ...]:
    """Where in the spec a bad key came from (for the error's line number)."""
    if vname and key in vflat:
        return ("variants", vname, key)
    if key in point:
        return ("grid", key)
    if key in base_flat:
        return ("base", key)
    if vname:
        return ("variants", vname)
    return ("grid",) if point else ("base",)
