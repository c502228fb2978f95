"""Experiment specs: one YAML file -> variants x grid x seeds runs, validated as a whole up front.

Every error names the spec file and the YAML line of the offending key, so nothing is written to the
store until the whole study is known to be runnable.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.stats.corrections import CORRECTIONS, PAIRINGS  # the statistics own the names they compute
from gptlab.config import RunConfig, build_config, flatten_overrides
from gptlab.errors import ConfigError, UserError, closest
from gptlab.overrides import format_value
from gptlab.runner.design import Adaptive, Scale, Size, Tune, parse_scale, parse_seeds, parse_tune
from gptlab.yamlio import line_of, load_yaml

TOP_KEYS = ("name", "description", "base", "grid", "variants", "seeds", "compare", "tune", "scale")
COMPARE_KEYS = ("metric", "goal", "baseline", "margin", "correction", "pairing")
NAME_RE = re.compile(r"[A-Za-z0-9_][\w.+=]*")


@dataclass(frozen=True)
class Compare:
    metric: str = "val/loss"
    goal: str = "minimize"
    baseline: str | None = None
    margin: float | None = None  # equivalence margin in metric units; None: the report's default
    correction: str = "holm"
    pairing: str = "auto"  # auto | seed | none: compare within each seed (gptlab.stats.paired)


@dataclass(frozen=True)
class PlannedRun:
    name: str
    variant: str | None
    seed: int
    overrides: dict[str, Any]   # keys that differ from the spec's base: variant, size, grid, tuned value, seed
    flat: dict[str, Any]        # every key this run sets: base, variant, size, grid, tuned value, seed, --set
    config: RunConfig
    study: dict[str, Any] = field(default_factory=dict)  # stage (tune|compare), at (tuned|shared), size


@dataclass(frozen=True)
class Cell:
    """One variant x size x grid point: what a study compares, before seeds (and tuned values) are added."""

    name: str                   # the run names' prefix ('' for a spec with neither variants nor grid)
    variant: str | None
    size: str | None
    overrides: dict[str, Any]   # variant, size and grid keys
    n_params: int | None = None  # scale studies: the model's parameter count
    point: dict[str, Any] = field(default_factory=dict)  # the grid keys' values (a cell at another size shares them)


@dataclass(frozen=True)
class Spec:
    path: Path
    name: str
    description: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    variants: dict[str, dict[str, Any]]
    seeds: tuple[int, ...] | Adaptive
    compare: Compare
    raw: dict[str, Any] = field(repr=False)
    runs: tuple[PlannedRun, ...] = ()  # a fixed design's runs (adaptive: up to max seeds; tune: at base values)
    cells: tuple[Cell, ...] = ()
    tune: Tune | None = None
    scale: Scale | None = None
    sets: dict[str, Any] = field(default_factory=dict)

    @property
    def in_rounds(self) -> bool:
        """Planned round by round from the store (gptlab.study) rather than all at once."""
        return self.tune is not None or isinstance(self.seeds, Adaptive)

    def seed_list(self) -> tuple[int, ...]:
        """Every comparison seed the study may train."""
        return self.seeds.seeds(self.seeds.max) if isinstance(self.seeds, Adaptive) else self.seeds

    def planned(self, cell: Cell, seed: int, values: dict[str, Any] | None = None, *, stage: str = "compare",
                at: str | None = None) -> PlannedRun:
        """The run of `cell` at `seed`; `values`: tuned keys (a tuning candidate, or the chosen value)."""
        values = values or {}
        parts = [cell.name] if cell.name else []
        if stage == "tune":
            parts += ["tune"] + [f"{k}={format_value(v)}" for k, v in values.items()]
        elif at == "shared":
            parts.append("shared")
        name = "-".join(parts + [f"seed{seed}"])
        overrides = {**cell.overrides, **values, "seed": seed}
        flat = {**self.base, **overrides, **self.sets}
        study = {"stage": stage} if self.tune is not None or stage == "tune" else {}
        if at is not None:
            study["at"] = at
        if cell.size is not None:
            study["size"] = cell.size
        return PlannedRun(name, cell.variant, seed, overrides, flat, build_config(flat), study)


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
    seeds = parse_seeds(data.get("seeds", [0]), fail)
    compare = _compare(data.get("compare"), variants, fail)
    flat_at = lambda value, prefix: _flat(value, prefix, lines, src)  # noqa: E731
    tune = parse_tune(data.get("tune"), seeds, flat_at, fail)
    scale = parse_scale(data.get("scale"), flat_at, fail)
    if tune is not None and tune.at == "smallest" and scale is None:
        fail("tune.at: smallest tunes at the smallest size of a scale study, and this spec has no scale:",
             ("tune", "at"), "add scale: {s: {...}, m: {...}} or drop at: smallest")
    for key in ("seed",):
        if key in grid or key in base_flat or any(key in v for v in variants.values()):
            fail("seeds are set by the spec's `seeds` list", fix="move them to seeds: [...]", key=key)
    if tune is not None:
        clash = [k for k in tune.values if k in grid]
        if clash:
            fail(f"'{clash[0]}' is both tuned and in the grid", ("grid", clash[0]), "tune it or grid it, not both")
    if isinstance(seeds, Adaptive):
        if not variants or compare.baseline is None:
            fail("adaptive seeds compare every variant with a baseline: the spec names none", ("compare",),
                 "set compare: {baseline: VARIANT}")
        if compare.margin is None and "loss" not in compare.metric:
            fail("adaptive seeds stop at equivalence, which needs a margin for this metric", ("compare",),
                 "set compare.margin in the metric's units")
        if compare.margin == 0:
            fail("adaptive seeds stop at equivalence within the margin, and no interval lies within +-0",
                 ("compare", "margin"), "give a positive margin in the metric's units, e.g. margin: 0.02")

    try:
        sets = flatten_overrides(sets or {})
    except ConfigError as err:
        raise err.located("--set") from None
    if "seed" in sets:
        raise UserError("seeds are set by the spec's `seeds` list", source="--set", key="seed",
                        fix=f"edit seeds: [...] in {src}")
    for key in (tune.values if tune else {}):
        if key in sets:
            raise UserError(f"{key} is tuned by the spec's tune: section", source="--set", key=key,
                            fix=f"drop --set {key}=... or edit tune: in {src}")
    sizes = _ordered_sizes(scale, base_flat, sets, fail) if scale else [None]
    cells, runs = [], []
    names: dict[str, tuple[str, ...]] = {}
    probe = Spec(path, name, description, base_flat, grid, variants, seeds, compare, data, sets=sets, tune=tune,
                 scale=scale)
    seed0 = probe.seed_list()[0]
    for vname, vflat in (variants.items() or [(None, {})]):
        for size in sizes:
            sflat = dict(size.overrides) if size else {}
            for point in _product(grid):
                overrides = {**vflat, **sflat, **point}
                flat = {**base_flat, **overrides, "seed": seed0, **sets}
                where = ("variants", vname) if vname else ("scale", size.name) if size else \
                    ("grid",) if point else ("seeds",)
                try:
                    config = build_config(flat)
                    for values in (tune.candidates() if tune else []):  # every tuning value must build too
                        build_config({**flat, **values})
                except ConfigError as err:
                    if err.key in sets:
                        raise err.located("--set") from None
                    kp = _origin(err.key, vname, vflat, point, base_flat)
                    fail(f"{err.message} (in run {_run_name(vname, point, seed0, size)})", kp, err.fix, key=err.key)
                coerced = config.flat()  # names from typed values: '1e-3' and 0.001 name the same run
                cell_name = _run_name(vname, {k: coerced[k] for k in point}, None, size)
                if cell_name in names:
                    fail(f"duplicate run name '{cell_name}'", where, "make variant names and grid values distinct")
                names[cell_name] = where
                cell = Cell(cell_name, vname, size.name if size else None, overrides,
                            _n_params(config) if size else None, point)
                cells.append(cell)
                runs += [probe.planned(cell, seed) for seed in probe.seed_list()]
    _check_runnable(runs, src)
    return Spec(path, name, description, base_flat, grid, variants, seeds, compare, data, tuple(runs),
                tuple(cells), tune, scale, sets)


def _ordered_sizes(scale: Scale, base_flat: dict[str, Any], sets: dict[str, Any], fail) -> list[Size]:
    """The sizes by their parameter count (computed at the base config, not declared); equal counts fail."""
    counted = []
    for size in scale.sizes:
        flat = {**base_flat, **size.overrides, **sets}
        try:
            config = build_config(flat)
        except ConfigError as err:
            fail(f"{err.message} (in size {size.name})", ("scale", size.name, err.key or ""), err.fix, key=err.key)
        counted.append((_n_params(config), size))
    counted.sort(key=lambda item: item[0])
    for (n1, a), (n2, b) in zip(counted, counted[1:]):
        if n1 == n2:
            fail(f"sizes '{a.name}' and '{b.name}' have the same parameter count ({n1:,})", ("scale", b.name),
                 "change n_layer or n_embd of one of them")
    if scale.tokens_per_param is not None:
        return [Size(s.name, {**s.overrides, "max_steps": _steps_for(n, scale.tokens_per_param, {**base_flat, **s.overrides, **sets})})
                for n, s in counted]
    return [s for _, s in counted]


def _steps_for(n_params: int, tokens_per_param: float, flat: dict[str, Any]) -> int:
    """max_steps that trains `tokens_per_param` tokens per parameter."""
    config = build_config(flat)
    tokens_per_step = config.train.batch_size * config.train.grad_accum * config.model.block_size
    return max(1, round(tokens_per_param * n_params / tokens_per_step))


@functools.lru_cache(maxsize=8)
def _vocab_of(path: str | None, val_fraction: float, block_size: int) -> int:
    from gptlab.config import DataConfig
    from gptlab.dataset import load_data

    return load_data(DataConfig(path, val_fraction), block_size).tokenizer.vocab_size


def _vocab_size(config: RunConfig) -> int:
    return _vocab_of(config.data.path, config.data.val_fraction, config.model.block_size)


def _n_params(config: RunConfig) -> int:
    """The model's parameter count (as summary.json's n_params), built on the meta device: no memory."""
    import torch

    from gptlab.model import build_model

    vocab = config.model.vocab_size or _vocab_size(config)
    with torch.device("meta"):
        return int(build_model(config.replace(vocab_size=vocab).model).num_params())


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
        if not isinstance(vname, str):  # YAML reads `null:`, `true:` or `1:` as None, True or 1
            word = "null" if vname is None else str(vname).lower()
            fail(f"variant name '{word}' is not a name: YAML reads it as {type(vname).__name__}", ("variants", word),
                 f"quote it (\"{word}\": ...) or choose another name")
        if not NAME_RE.fullmatch(vname) or "-" in vname:
            fail(f"invalid variant name '{vname}'", ("variants", vname), "use letters, digits and '_'")
        out[vname] = _flat(_mapping(body, ("variants", vname), fail), ("variants", vname), lines, src)
    return out


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
    if out.pairing not in PAIRINGS:
        fail(f"invalid choice '{out.pairing}'", ("compare", "pairing"), "choose one of: " + ", ".join(PAIRINGS))
    return out


def _product(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _run_name(variant: str | None, point: dict[str, Any], seed: int | None, size: Size | None = None) -> str:
    """`variant-size=m-lr=0.001-seed1`; without a seed, the cell's prefix."""
    parts = ([variant] if variant else []) + ([f"size={size.name}"] if size else [])
    parts += [f"{k}={format_value(v)}" for k, v in point.items()] + ([f"seed{seed}"] if seed is not None else [])
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
