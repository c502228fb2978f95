"""`gptlab train [CONFIG.yaml] [OVERRIDE ...]`: one training run."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from gptlab.cli.common import PrintConfigOpt, RunsOpt, WandbOpt, echo_config, split_config_and_overrides
from gptlab.errors import UserError
from gptlab.overrides import parse_overrides, resolve, run_name
from gptlab.sweep.agent import agent_identity
from gptlab.store import RunLocked
from gptlab.store.layout import LOCKED


def _sigterm_as_interrupt(signum, frame):  # noqa: ANN001
    from gptlab.train.trainer import repeated_stop  # loaded by then: only a run's stop can be repeated

    if repeated_stop():  # the TERM a run already stopped for, sent again (Slurm: TERM, CONT, TERM)
        return
    raise KeyboardInterrupt


def train(ctx: typer.Context,
          experiment: Annotated[str | None, typer.Option(
              help="Experiment folder under the run store (default: adhoc; sweep-<id> under `wandb agent`).")]
          = None,
          name: Annotated[str | None, typer.Option(help="Run name (default: derived from the overrides).")] = None,
          runs: RunsOpt = Path("runs"),
          wandb: WandbOpt = None,
          print_config: PrintConfigOpt = False,
          meta: Annotated[str | None, typer.Option(hidden=True, help="JSON run metadata from `gptlab run`.")] = None,
          fresh: Annotated[bool, typer.Option(hidden=True, help="Discard any earlier state of this run.")] = False,
          expect: Annotated[str | None, typer.Option(hidden=True, help="The run's fingerprint a planner saw: "
                                                     "--fresh applies only if it is unchanged.")] = None,
          ) -> None:
    """Train one model. CONFIG.yaml (flat or sectioned) and key=value / --key=value overrides."""
    from gptlab.train import RunMeta, run_training  # torch: only when a run starts (help and completion stay fast)
    from gptlab.train.tracking import in_sweep_agent

    config_file, rest = split_config_and_overrides(list(ctx.args))
    overrides = parse_overrides(rest)
    if wandb is not None:
        overrides["wandb"] = wandb
    cfg, flat = resolve(config_file, overrides)
    extra = json.loads(meta) if meta else {}
    shown = {k: v for k, v in flat.items() if k != "wandb"}
    experiment, name = agent_identity(experiment, name, shown, runs)
    run_meta = RunMeta(experiment=_safe(experiment, "experiment"),
                       name=_safe(name or extra.get("name") or run_name(shown, config_file), "name"),
                       variant=extra.get("variant"), overrides=extra.get("overrides", shown),
                       study=extra.get("study") or {})
    if print_config:
        echo_config(cfg, runs / run_meta.experiment / run_meta.name)
        return
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        summary = run_training(cfg, runs, run_meta, fresh=fresh, expect=expect)
    except RunLocked as locked:
        print(f"skipped: {locked} {LOCKED}", file=sys.stderr)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        print(f"\ninterrupted: {runs / run_meta.experiment / run_meta.name} (rerun the same command to resume)",
              file=sys.stderr)
        raise typer.Exit(code=130) from None
    status = summary["status"]
    where = runs / run_meta.experiment / run_meta.name
    best = summary.get("best_val_loss")
    best_s = f"{best:.4f}" if best is not None else "n/a"
    print(f"{status}: {where} | best val loss {best_s} | {summary['steps']} steps | {summary['wall_s']:.1f}s")
    if status != "finished" and not (status == "diverged" and in_sweep_agent()):
        raise typer.Exit(code=1)  # under an agent a diverged run is a result the sweep learns from, not a crash


def _safe(value: str, key: str) -> str:
    if not value or "/" in value or value in (".", "..") or value.startswith("."):
        raise UserError(f"invalid {key} '{value}'", key=f"--{key}", fix="use a plain name without '/'")
    return value
