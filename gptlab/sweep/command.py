"""The command line of one sweep run, built the way `wandb agent` builds it, and the run's name.

The macro values come from wandb's own `create_sweep_command_args` / `create_sweep_command` (the
functions `wandb.wandb_agent.Agent._command_run` uses), so `--lr=0.001` here is byte for byte what an
agent would pass.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gptlab.errors import UserError
from gptlab.overrides import format_value, leaves

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
ARG_MACROS = ("${args}", "${args_no_hyphens}")


def plain(value: Any) -> Any:
    """numpy scalars from the engine -> Python values (as the W&B server would send them as JSON)."""
    return value.item() if hasattr(value, "item") else value


def agent_argv(command: Sequence[str], params: dict[str, Any], program: str | None,
               args_json_file: Path | None = None) -> list[str]:
    """Expand a sweep command's macros for one parameter point exactly as `wandb agent` does, except that
    `${interpreter}` is this Python (the agent's `python` resolves to it with this venv on PATH)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    template = create_sweep_command(list(command) or list(DEFAULT_COMMAND))  # fills ${envvar:NAME}
    sweep_vars: dict[str, Any] = create_sweep_command_args({"args": {k: {"value": plain(v)}
                                                                      for k, v in params.items()}})
    sweep_vars.update(interpreter=[sys.executable], program=[program] if program else [],
                      env=["/usr/bin/env"] if os.name != "nt" else [],
                      args_json_file=[str(args_json_file)] if args_json_file else [])
    argv: list[str] = []
    for chunk in map(str, template):
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += sweep_vars.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv


def check_command(command: Sequence[str], program: str | None, source: str) -> None:
    """`gptlab sweep` runs gptlab's own trainer: the command must call `gptlab train` with ${args}."""
    tokens = [str(c) for c in (command or DEFAULT_COMMAND)]
    if "${program}" in tokens and not program:
        raise UserError("the command uses ${program} but the file sets no program", source=source,
                        key="command", fix='write command: ["${env}", "gptlab", "train", "${args}"]')
    expanded = [t for c in tokens for t in ([program] if c == "${program}" and program else [c])]
    calls_train = any(Path(a).name in ("gptlab", "gptlab.exe") and b == "train"
                      for a, b in zip(expanded, expanded[1:]))
    if not calls_train or not any(m in tokens for m in ARG_MACROS):
        raise UserError("the command must run `gptlab train` with the sweep's ${args}", source=source,
                        key="command", fix='write command: ["${env}", "gptlab", "train", "${args}"]')


def run_env(base: dict[str, str]) -> dict[str, str]:
    """`gptlab` and `python` resolve to this interpreter's environment, as they do for an agent started
    from the activated venv."""
    env = dict(base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")]) if env.get("PATH") else bin_dir
    return env


def sweep_run_name(params: dict[str, Any]) -> str:
    """'n_layer=4-n_embd=128-seed0': the parameters in file order, the seed last as `seedN` so reports
    average seeds the way they do for experiment specs."""
    flat: dict[str, Any] = {}
    for key, value in params.items():  # a parameter group chosen whole names the run by its leaves
        flat.update(leaves(key, plain(value)) if isinstance(value, dict) else {key: value})
    parts = [f"{k}={format_value(plain(v))}" for k, v in flat.items() if k not in ("seed", "train.seed")]
    seed = flat.get("seed", flat.get("train.seed"))
    if seed is not None:
        parts.append(f"seed{format_value(plain(seed))}")
    return re.sub(r"[^\w.=+-]", "_", "-".join(parts) or "defaults")
