"""A spec's study design: `tune:` (each cell at its own best value), `seeds:` (a fixed list, or adaptive
`{start, max, step}`) and `scale:` (the study at several model sizes). Parsed and validated here, typed and
frozen; the study planner (gptlab.study) turns them into rounds of runs.

Every error goes through the spec's `fail(message, key_path, fix)`, so it names the spec file, the YAML
line and the fix, and nothing is written.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from gptlab.axes import ablation_keys
from gptlab.errors import closest
from gptlab.pack.plan import PACKABLE_KEYS
from gptlab.yamlio import parse_scalar

# scalar training keys a study may tune per cell (the keys a pack lets each member hold its own value of)
TUNABLE = PACKABLE_KEYS
TUNE_KEYS = ("seeds", "compare_shared", "at")  # tune's own keys beside the tuned ones
TUNE_AT = ("smallest",)  # tune.at: where a scale study tunes (default: at every size)
SCALE_KEYS = ("predict", "tokens_per_param")  # scale's own keys beside the size names
SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "mlp_ratio")  # what a size must set (at least one)


@dataclass(frozen=True)
class Tune:
    values: dict[str, tuple[Any, ...]]  # tuned key -> candidate values, in the spec's order
    seeds: tuple[int, ...]
    compare_shared: bool = False  # also run the comparison seeds at the base config's value
    at: str | None = None  # "smallest": a scale study tunes at its smallest size only and reuses the choice

    def candidates(self) -> list[dict[str, Any]]:
        """Every combination of the tuned values (a small grid when several keys are tuned)."""
        keys = list(self.values)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.values[k] for k in keys))]


@dataclass(frozen=True)
class Adaptive:
    """`seeds: {start, max, step}`: seeds 0.. added `step` at a time to comparisons still open."""

    start: int
    max: int
    step: int

    def looks(self) -> list[int]:
        """Seeds per variant at each planned look: start, start+step, ..., max."""
        out = list(range(self.start, self.max, self.step))
        return out + [self.max] if not out or out[-1] != self.max else out

    def seeds(self, n: int) -> tuple[int, ...]:
        return tuple(range(n))


@dataclass(frozen=True)
class Size:
    name: str
    overrides: dict[str, Any]  # flat config keys: shape, and optional training keys (steps, batch)


@dataclass(frozen=True)
class Scale:
    sizes: tuple[Size, ...]  # as declared; the spec orders them by parameter count once built
    tokens_per_param: float | None = None  # max_steps per size from its parameter count (Chinchilla ~20)
    predict: float | None = None  # n_params to extrapolate the effect to (needs 3+ sizes)


def parse_tune(value: Any, seeds: tuple[int, ...] | Adaptive, flat, fail) -> Tune | None:
    """`tune: {lr: [...], seeds: [100], compare_shared: true, at: smallest}`; `at: smallest` (scale studies)
    tunes at the smallest size only and reuses each variant's choice at every size: μP's transfer (Yang et al.
    2022, Tensor Programs V), checked against `scale:` by the spec."""
    if value is None:
        return None
    if not isinstance(value, dict):
        fail("tune must be a mapping of training keys to lists of values", ("tune",),
             "write tune: {lr: [3.0e-4, 1.0e-3, 3.0e-3], seeds: [100]}")
    tuned: dict[str, tuple[Any, ...]] = {}
    for key, values in value.items():
        key = str(key)
        if key in TUNE_KEYS:
            continue
        bare = next(iter(flat({key: None}, ("tune",))), key)
        if bare not in TUNABLE:
            fail(f"'{key}' cannot be tuned: only scalar training keys can", ("tune", key),
                 "tune one of: " + ", ".join(TUNABLE))
        if not isinstance(values, list):
            fail("a tuned key takes a list of values", ("tune", key), f"write {key}: [a, b, c]")
        if not values:
            fail("empty list of values to tune", ("tune", key), "give at least two values or remove the key")
        if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in values):
            fail("tuned values must be scalars", ("tune", key), f"write {key}: [a, b, c]")
        if len(set(map(repr, values))) != len(values):
            fail("repeated value in a tuned list", ("tune", key), "list each value once")
        tuned[bare] = tuple(_number(v) for v in values)
    if not tuned:
        fail("tune names no key to tune", ("tune",), "e.g. tune: {lr: [3.0e-4, 1.0e-3, 3.0e-3], seeds: [100]}")
    tune_seeds = value.get("seeds", [100])
    if isinstance(tune_seeds, int) and not isinstance(tune_seeds, bool):
        tune_seeds = [tune_seeds]
    if (not isinstance(tune_seeds, list) or not tune_seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in tune_seeds)
            or len(set(tune_seeds)) != len(tune_seeds)):
        fail("tune.seeds must be a non-empty list of distinct integers", ("tune", "seeds"), "write seeds: [100]")
    compared = set(seeds.seeds(seeds.max) if isinstance(seeds, Adaptive) else seeds)
    overlap = sorted(compared & set(tune_seeds))
    if overlap:
        fail(f"tuning seeds {overlap} are also comparison seeds: choosing the best value and testing on the "
             "same runs is biased", ("tune", "seeds"), "use tuning seeds outside the comparison seeds, e.g. [100]")
    shared = value.get("compare_shared", False)
    if not isinstance(shared, bool):
        fail("tune.compare_shared must be true or false", ("tune", "compare_shared"), "write compare_shared: true")
    at = value.get("at")
    if at is not None and at not in TUNE_AT:
        fail(f"invalid choice '{at}'", ("tune", "at"), "write at: smallest (tune at the smallest size of scale:), "
             "or drop at to tune at every size")
    return Tune(tuned, tuple(tune_seeds), shared, at)


def parse_seeds(value: Any, fail) -> tuple[int, ...] | Adaptive:
    """A list (fixed design) or `{start, max, step}` (adaptive)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, dict):
        unknown = [k for k in value if k not in ("start", "max", "step")]
        if unknown:
            fail("unknown key of adaptive seeds", ("seeds", str(unknown[0])),
                 closest(str(unknown[0]), ("start", "max", "step")))
        got = {k: value.get(k) for k in ("start", "max", "step")}
        for key, v in got.items():
            if not isinstance(v, int) or isinstance(v, bool):
                fail(f"seeds.{key} must be an integer", ("seeds", key), "write seeds: {start: 3, max: 12, step: 2}")
        if got["start"] < 2:
            fail("seeds.start must be at least 2 (a comparison needs two seeds a side)", ("seeds", "start"),
                 "write start: 3")
        if got["step"] < 1:
            fail("seeds.step must be at least 1", ("seeds", "step"), "write step: 2")
        if got["start"] > got["max"]:
            fail(f"seeds.start ({got['start']}) is larger than seeds.max ({got['max']})", ("seeds", "max"),
                 "make max at least start")
        return Adaptive(got["start"], got["max"], got["step"])
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            for s in value):
        fail("seeds must be a non-empty list of integers or {start, max, step}", ("seeds",),
             "write seeds: [0, 1, 2] or seeds: {start: 3, max: 12, step: 2}")
    if len(set(value)) != len(value):
        fail("repeated seed", ("seeds",), "list each seed once")
    return tuple(value)


def parse_scale(value: Any, flat, fail) -> Scale | None:
    """`scale: {s: {n_layer: 2, n_embd: 64}, ..., tokens_per_param: 20, predict: {n_params: 1.0e7}}`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        fail("scale must be a mapping of size names to shape overrides", ("scale",),
             "write scale: {s: {n_layer: 2, n_embd: 64}, m: {n_layer: 4, n_embd: 128}}")
    sizes = []
    for name, body in value.items():
        name = str(name)
        if name in SCALE_KEYS:
            continue
        if not name.isidentifier():
            fail(f"invalid size name '{name}'", ("scale", name), "use letters, digits and '_'")
        if not isinstance(body, dict) or not body:
            fail(f"size '{name}' changes nothing", ("scale", name), "give it shape keys, e.g. {n_layer: 4, n_embd: 128}")
        overrides = flat(body, ("scale", name))
        for key in overrides:
            if key in ablation_keys() or key == "seed":
                fail(f"'{key}' is not a size: sizes set shapes and training lengths", ("scale", name, key),
                     "compare it with variants: instead")
        if not any(k in SHAPE_KEYS for k in overrides):
            fail(f"size '{name}' sets no model shape", ("scale", name), "set n_layer, n_head, n_embd or mlp_ratio")
        sizes.append(Size(name, overrides))
    if len(sizes) < 2:
        fail("scale needs at least two sizes", ("scale",), "add a size, or drop scale: and set the shape in base")
    tpp = _number(value.get("tokens_per_param"))
    if tpp is not None and (isinstance(tpp, bool) or not isinstance(tpp, (int, float)) or not tpp > 0):
        fail(f"invalid tokens_per_param '{tpp}'", ("scale", "tokens_per_param"), "give a positive number, e.g. 20")
    if tpp is not None and any("max_steps" in s.overrides for s in sizes):
        fail("tokens_per_param sets max_steps per size; a size also sets it", ("scale", "tokens_per_param"),
             "drop max_steps from the sizes or drop tokens_per_param")
    predict = value.get("predict")
    if isinstance(predict, dict) and "n_params" in predict:
        predict = {**predict, "n_params": _number(predict["n_params"])}
    target = None
    if predict is not None:
        ok = isinstance(predict, dict) and set(predict) == {"n_params"} and isinstance(predict["n_params"], (int, float)) \
            and not isinstance(predict["n_params"], bool) and predict["n_params"] > 0
        if not ok:
            fail("scale.predict takes {n_params: N}", ("scale", "predict"), "write predict: {n_params: 1.0e7}")
        if len(sizes) < 3:
            fail("scale.predict needs at least 3 sizes (a trend from 2 points is no evidence)", ("scale", "predict"),
                 "add a size or drop predict")
        target = float(predict["n_params"])
    return Scale(tuple(sizes), None if tpp is None else float(tpp), target)


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` and `1.0e7` as text; a user writing them means a number."""
    return parse_scalar(value) if isinstance(value, str) else value
