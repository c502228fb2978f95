"""Resolving a run's config from a YAML file and command-line overrides.

Overrides accept `key=value`, `section.key=value`, `--key=value` and `--section.key=value` (the last two
are what `wandb agent` passes through ${args}); values parse as YAML scalars.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from gptlab.config import KEY_SECTION, SECTIONS, RunConfig, build_config, flatten_overrides, spelled_choice
from gptlab.errors import ConfigError, UserError
from gptlab.yamlio import line_of, load_yaml, parse_scalar


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """['--lr=1e-3', 'n_layer=2'] -> {'lr': 0.001, 'n_layer': 2} (unvalidated, possibly dotted keys)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        body = arg[2:] if arg.startswith("--") else arg
        if "=" in body:
            key, _, value = body.partition("=")
        elif arg.startswith("--") and i + 1 < len(args) and "=" not in args[i + 1]:
            key, value = body, args[i + 1]  # `--lr 1e-3`
            i += 1
        else:
            raise UserError(f"cannot read override '{arg}'", key=body,
                            fix="write key=value, section.key=value or --key=value")
        key = key.strip().replace("-", "_")  # --max-steps=1 means max_steps
        if not key:
            raise UserError(f"cannot read override '{arg}'", fix="write key=value")
        out.update({k: spelled_choice(k, v) for k, v in leaves(key, parse_value(value, arg)).items()})
        i += 1
    return out


def parse_value(text: str, arg: str = "") -> Any:
    """One override value: a YAML scalar, W&B's `None` for a null, or a parameter group as `wandb agent`
    passes it (`{'n_layer': 4, 'n_embd': 128}`, Python's repr: read as a literal, never executed)."""
    if text == "None":  # `wandb agent` writes a null parameter as Python's None
        return None
    if text.lstrip().startswith("{"):
        try:
            group = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            group = parse_mapping(text)
        if not isinstance(group, dict):
            raise UserError(f"cannot read override '{arg or text}'", fix="write key=value, or key={name: value, ...}")
        return group
    return parse_scalar(text)


def parse_mapping(text: str) -> Any:
    """A flow mapping written by hand (`model={n_layer: 4}`)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def leaves(key: str, value: Any, nested: bool = False) -> dict[str, Any]:
    """A W&B parameter group flattened to gptlab's keys (leaf names are unique across sections):
    model={n_layer: 4} and arch.n_layer=4 both mean n_layer=4; section.key stays as written so a key in the
    wrong section is still named."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for sub, subvalue in value.items():
            out.update(leaves(str(sub), subvalue, nested=True))
        return out
    if isinstance(value, str) and nested:
        value = parse_scalar(value)  # a group's '1e-3' (YAML 1.1 reads it as a string) is a number
    if "." in key:
        section, _, leaf = key.rpartition(".")
        if section not in SECTIONS and leaf in KEY_SECTION:
            return {leaf: value}
    return {key: value}


def read_config_file(path: str | Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """A config YAML (flat or sectioned) as flat bare-name overrides, and the line of each key.
    Unknown keys fail here; values are checked once merged with the command line (resolve)."""
    data, lines = load_yaml(path)
    if data is None:
        return {}, lines
    if not isinstance(data, dict):
        raise UserError("a config file must be a mapping of config keys", source=str(path), line=1,
                        fix="write key: value lines, flat or under model/train/data/log")
    try:
        return flatten_overrides(data), lines
    except ConfigError as err:
        raise err.located(str(path), _line_for_key(lines, err.key)) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """read_config_file, validated on its own (errors carry file and line)."""
    flat, lines = read_config_file(path)
    try:
        build_config(flat)
    except ConfigError as err:
        raise err.located(str(path), _line_for_key(lines, err.key)) from None
    return flat


def _line_for_key(lines: dict[tuple[str, ...], int], key: str | None) -> int | None:
    if not key:
        return None
    parts = tuple(key.split("."))
    hits = [line for path, line in lines.items() if path[-len(parts):] == parts or path[-1] == parts[-1]]
    return min(hits) if hits else line_of(lines, parts)


def resolve(config_file: str | None, overrides: dict[str, Any],
            base: RunConfig | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """(validated RunConfig, the flat overrides from the command line)."""
    flat_file, lines = read_config_file(config_file) if config_file else ({}, {})
    try:
        flat_cli = without_nulls(flatten_overrides(overrides))
    except ConfigError as err:
        raise err.located("command line") from None
    try:
        return build_config({**flat_file, **flat_cli}, base=base), flat_cli
    except ConfigError as err:
        bare = (err.key or "").rpartition(".")[2]
        if bare in flat_cli or not config_file:
            raise err.located("command line") from None
        raise err.located(config_file, _line_for_key(lines, err.key) if bare in flat_file else None) from None


def without_nulls(flat: dict[str, Any]) -> dict[str, Any]:
    """A null value (a W&B sweep's `null`, `key=null`) leaves the key as the config file or default has it."""
    return {k: v for k, v in flat.items() if v is not None}


def run_name(overrides: dict[str, Any], config_file: str | None = None) -> str:
    """Deterministic name from the overrides, e.g. 'n_layer=2-lr=0.001'."""
    parts = [Path(config_file).stem] if config_file else []
    parts += [f"{k}={format_value(spelled_choice(k, v))}" for k, v in overrides.items()]
    name = "-".join(parts) or "defaults"
    return re.sub(r"[^\w.=+-]", "_", name)


_SEED_PART = re.compile(r"seed=?\d+")


def label_from_name(name: str) -> str:
    """The group a run belongs to: its name without the seed part (`post_ln-lr=0.001-seed1`,
    `lr=0.001-seed=1` and `seed1` -> `post_ln-lr=0.001`, `lr=0.001`, `base`), so seeds average together."""
    parts = [p for p in name.split("-") if not _SEED_PART.fullmatch(p)]
    if len(parts) > 1 and parts[-1].isdigit():  # `-2`: a repeated sweep point, same config
        parts = parts[:-1]
    return "-".join(parts) or "base"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
