"""A W&B sweep file, checked the way the server would check it and then against gptlab's config.

Every problem becomes a UserError naming the file (and the YAML line of the key when known), so a bad
file stops `gptlab sweep` before any run starts.
"""
from __future__ import annotations

import itertools
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.config import build_config, flatten_overrides, import_plugins
from gptlab.errors import ConfigError, UserError, closest
from gptlab.overrides import leaves, without_nulls
from gptlab.yamlio import line_of, load_yaml

# what a gptlab run reports: summary.json fields (W&B summary) and metrics.jsonl keys (W&B history)
SUMMARY_METRICS = ("best_val_loss", "final_val_loss", "steps", "wall_s", "tokens_per_s", "n_params")
HISTORY_METRICS = ("val/loss", "train/loss", "lr", "tokens_per_s", "best_val_loss")
KNOWN_METRICS = tuple(dict.fromkeys(SUMMARY_METRICS + HISTORY_METRICS))


def sweeps_engine():
    """W&B's open-source sweep engine (`sweeps`), imported without its pydantic-v1 config warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


@dataclass(frozen=True)
class SweepFile:
    path: Path
    name: str                         # `name:` of the file, else its stem: runs/<name>/
    config: dict[str, Any]            # the engine's config, with --set applied to fixed parameters
    method: str
    metric: str | None
    goal: str                         # minimize | maximize
    searched: tuple[str, ...]         # parameters that take more than one value (they name the runs)
    extra_args: tuple[str, ...] = ()  # --set keys that are not parameters, as --key=value
    command: tuple[str, ...] = ()
    early_terminate: bool = False
    sets: dict[str, Any] = field(default_factory=dict)


SWEEP_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*")


def load_sweep(path: str | Path, sets: dict[str, Any] | None = None) -> SweepFile:
    """Parse and validate a sweep file; `sets` (bare or dotted gptlab keys) fix values for every run."""
    path = Path(path)
    data, lines = load_yaml(path)
    src = str(path)

    def fail(message: str, key_path: tuple[str, ...] = (), fix: str | None = None) -> None:
        raise UserError(message, source=src, line=line_of(lines, key_path) if key_path else None,
                        key=".".join(key_path) or None, fix=fix)

    if not isinstance(data, dict):
        fail("a sweep file must be a mapping with method, metric and parameters", fix="see sweeps/")
    if isinstance(data.get("parameters"), dict):
        data = {**data, "parameters": _numbers_from_strings(data["parameters"], ("parameters",), src, lines)}
    engine = sweeps_engine()
    try:
        violations = engine.schema_violations_from_proposed_config(data)
    except (ValueError, AttributeError, TypeError) as err:  # the engine raises for malformed parameters
        violations = [str(err).splitlines()[0] or type(err).__name__]
    if violations:
        fail(f"not a valid W&B sweep: {violations[0]}", _violation_path(violations[0], data),
             "see https://docs.wandb.ai/guides/sweeps/sweep-config-keys")
    method = data["method"]
    if method not in ("grid", "random", "bayes"):
        fail(f"method '{method}' cannot run locally", ("method",), "use grid, random or bayes")

    name = str(data.get("name") or path.stem)
    if not SWEEP_NAME.fullmatch(name):
        fail(f"invalid sweep name '{name}'", ("name",), "use letters, digits, '_', '.' and '-': it names runs/<name>/")
    params, where = flatten_parameters(data["parameters"], fail)
    # `value: null` leaves the key at its default, as the agent path does with the `--key=None` it receives
    params = {p: spec for p, spec in params.items() if not ("value" in spec and spec["value"] is None)}
    _import_plugins(params, sets or {}, fail, where)  # their options are config keys from here on
    for pname, spec in params.items():
        if method == "grid" and "value" not in spec and "values" not in spec:
            fail("grid search needs `values` (or `value`) for every parameter", where[pname],
                 "list the values, or use method: random or bayes for a distribution")
        for value in spec["values"] if "values" in spec else [spec.get("value", 0)]:
            try:
                flatten_overrides(point_leaves({pname: 0 if value is None else value}))
            except ConfigError as err:
                fail(f"'{err.key or pname}' is not a gptlab config key", where[pname], err.fix)
    searched = tuple(p for p, s in params.items() if "value" not in s and len(s.get("values", [0, 0])) > 1)

    metric = (data.get("metric") or {}).get("name")
    goal = (data.get("metric") or {}).get("goal", "minimize")
    if metric is not None and metric not in KNOWN_METRICS:
        fail(f"gptlab runs never report metric '{metric}'", ("metric", "name"), closest(metric, KNOWN_METRICS))

    config, extra = _apply_sets({**data, "parameters": params}, sets or {}, searched)
    _check_values(config["parameters"], fail, where)
    return SweepFile(path=path, name=name, config=config, method=method,
                     metric=metric, goal=goal, searched=searched, extra_args=tuple(extra),
                     command=tuple(str(c) for c in data.get("command") or ()),
                     early_terminate="early_terminate" in data, sets=dict(sets or {}))


def _import_plugins(params: dict[str, Any], sets: dict[str, Any], fail, where) -> None:
    """Import the plugins a sweep's `plugins` parameter (every listed value) or its --set names."""
    for pname in ("plugins", "model.plugins"):
        spec = params.get(pname) or {}
        for value in spec.get("values", [spec.get("value")]):
            try:
                import_plugins({"plugins": value} if value is not None else {})
            except ConfigError as err:
                fail(err.message, where[pname], err.fix)
    try:
        import_plugins(sets)
    except ConfigError as err:
        raise err.located("--set") from None


def _apply_sets(data: dict[str, Any], sets: dict[str, Any], searched: tuple[str, ...]):
    """--set on a fixed parameter replaces its value (so the engine, the args and the table agree);
    any other key becomes an extra --key=value on every run. Setting a searched parameter is an error."""
    try:
        flat_sets = flatten_overrides(sets)
    except ConfigError as err:
        raise err.located("--set") from None
    by_leaf = {next(iter(flatten_overrides({p: 0}))): p for p, spec in data["parameters"].items()
               if not _is_group_choice(spec)}
    config = {**data, "parameters": {p: dict(s) for p, s in data["parameters"].items()}}
    extra = []
    for key, value in flat_sets.items():
        pname = by_leaf.get(key)
        if pname in searched:
            raise UserError("is searched by the sweep and cannot be fixed", source="--set", key=key,
                            fix=f"remove --set {key}=... or edit the sweep's parameters")
        if pname is not None:
            config["parameters"][pname] = {"value": value}
        else:
            extra.append(f"--{key}={value}")
    return config, extra


def flatten_parameters(params: dict[str, Any], fail, path: tuple[str, ...] = ("parameters",)):
    """W&B's nested parameter groups (`model: {parameters: {n_layer: {values: [...]}}}`, at any depth) as
    gptlab's flat keys, since leaf names are unique; a group fixed with `value: {n_layer: 4, ...}` becomes
    one fixed parameter per leaf. A group chosen whole (`values: [{n_layer: 2, n_embd: 64}, ...]`) stays one
    parameter: its points are coupled. Returns (flat parameters, each one's key path for error lines)."""
    flat: dict[str, dict[str, Any]] = {}
    where: dict[str, tuple[str, ...]] = {}

    def put(name: str, spec: dict[str, Any], at: tuple[str, ...]) -> None:
        if name in flat:
            fail(f"'{name}' is set twice (parameter names are gptlab keys, unique at every depth)", at,
                 "keep one of them")
        flat[name], where[name] = spec, at

    for pname, spec in params.items():
        at = (*path, str(pname))
        if not isinstance(spec, dict):
            fail("a parameter must be a mapping (value, values or a distribution)", at, "e.g. lr: {value: 0.001}")
        if "parameters" in spec:
            sub, sub_where = flatten_parameters(spec["parameters"] or {}, fail, (*at, "parameters"))
            for name, leaf in sub.items():
                put(name, leaf, sub_where[name])
        elif isinstance(spec.get("value"), dict):
            for name, value in point_leaves({str(pname): spec["value"]}).items():
                put(name, {"value": value}, (*at, "value"))
        else:
            put(str(pname), spec, at)
    return flat, where


def point_leaves(point: dict[str, Any]) -> dict[str, Any]:
    """A point's values as gptlab keys: a group chosen whole contributes each of its leaves."""
    out: dict[str, Any] = {}
    for pname, value in point.items():
        out.update(leaves(pname, value))
    return out


def _is_group_choice(spec: dict[str, Any]) -> bool:
    return any(isinstance(v, dict) for v in spec.get("values", []))


NUMBER_KEYS = ("value", "values", "min", "max", "mu", "sigma", "q")


def _numbers_from_strings(params: Any, path: tuple[str, ...], src: str, lines) -> Any:  # noqa: ANN001
    """YAML 1.1 reads `1e-3` as a string, and W&B's config would then show a string: numbers written as
    strings become numbers, with a warning naming the file, line and the spelling YAML reads as a number."""
    if not isinstance(params, dict):
        return params
    out: dict[str, Any] = {}
    for pname, spec in params.items():
        at = (*path, str(pname))
        if not isinstance(spec, dict):
            out[pname] = spec
            continue
        spec = dict(spec)
        if isinstance(spec.get("parameters"), dict):
            spec["parameters"] = _numbers_from_strings(spec["parameters"], (*at, "parameters"), src, lines)
        for key in NUMBER_KEYS:
            if key not in spec:
                continue
            if key == "values" and isinstance(spec[key], list):
                spec[key] = [_number_of(v, (*at, key), src, lines) for v in spec[key]]
            else:
                spec[key] = _number_of(spec[key], (*at, key), src, lines)
        out[pname] = spec
    return out


def _number_of(value: Any, at: tuple[str, ...], src: str, lines) -> Any:  # noqa: ANN001
    if isinstance(value, dict):
        return {k: _number_of(v, (*at, str(k)), src, lines) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if value.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        return value
    number = int(number) if number.is_integer() and not any(c in value.lower() for c in ".e") else number
    line = line_of(lines, at)
    spelled = f"{number:.1e}".replace("e-0", "e-").replace("e+0", "e+") if isinstance(number, float) else str(number)
    print(f"warning: {src}{f':{line}' if line else ''}: {'.'.join(at)}: '{value}' is a string in YAML (W&B's "
          f"config would show a string); read as {number!r} (write {spelled} so every reader sees a number)",
          file=sys.stderr)
    return number


def _check_values(params: dict[str, dict[str, Any]], fail, where: dict[str, tuple[str, ...]] | None = None) -> None:
    """Build the gptlab config of every combination of listed values (distributions use their bounds),
    so a bad value or an impossible combination (heads that do not divide the width) fails up front."""
    choices: dict[str, list[Any]] = {}
    for pname, spec in params.items():
        if "value" in spec:
            choices[pname] = [spec["value"]]
        elif "values" in spec:
            choices[pname] = list(spec["values"])
        else:
            choices[pname] = [v for v in (spec.get("min"), spec.get("max")) if v is not None][:1] or [None]
    combos = list(itertools.product(*choices.values()))
    for combo in combos[:2000]:  # plenty for any grid a person writes
        point = {p: v for p, v in zip(choices, combo) if v is not None}  # null: the key's default
        try:
            build_config(without_nulls(flatten_overrides(point_leaves(point))))
        except ConfigError as err:
            at = next((p for p in point if err.key and (p == err.key or p.endswith("." + err.key)
                                                         or err.key in point_leaves({p: point[p]}))), None)
            shown = ", ".join(f"{p}={v}" for p, v in point.items() if p in _varying(choices))
            fail(f"{err.message}" + (f" (at {shown})" if shown else ""),
                 (where or {}).get(at, ("parameters", at)) if at else ("parameters",), err.fix)


def _varying(choices: dict[str, list[Any]]) -> set[str]:
    return {p for p, vs in choices.items() if len(vs) > 1}


def _violation_path(message: str, data: dict[str, Any]) -> tuple[str, ...]:
    """Best guess at the key a schema message is about, for its line number."""
    if "method" in data and f"'{data['method']}' is not one of" in message:
        return ("method",)
    for key in data:
        if f"'{key}'" in message:
            return (str(key),)
    params = data.get("parameters")
    for pname in params if isinstance(params, dict) else {}:
        if str(pname) in message:
            return ("parameters", str(pname))
    return ()
