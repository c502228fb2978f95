"""`gptlab sweep SWEEP.yaml`: a W&B sweep file run here, by W&B's own open-source sweep engine."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gptlab.cli.common import PrintConfigOpt, RunsOpt, WandbOpt, check_wandb_mode, choice, echo_config, parse_sets
from gptlab.errors import UserError
from gptlab.pack.plan import MODES as PACK_MODES


def sweep(file: Annotated[Path, typer.Argument(help="W&B sweep file (sweeps/*.yaml).")],
          count: Annotated[int | None, typer.Option(
              help="Most runs to start (grid: default every point; random and bayes need it).")] = None,
          jobs: Annotated[int, typer.Option(help="Runs executed at once.")] = 1,
          set_: Annotated[list[str] | None, typer.Option(
              "--set", help="KEY=VALUE for every run, e.g. --set max_steps=200 --set block_size=64 for a CPU.")]
          = None,
          devices: Annotated[str | None, typer.Option(
              help="Devices to spread runs over, e.g. 0,1 or cpu (default: every visible GPU, else CPU).")] = None,
          pack: Annotated[Optional[choice(PACK_MODES)], typer.Option(
              help="Grid points that differ only in seed (seeds), or also in lr, min_lr, lr_schedule, warmup_steps, "
                   "weight_decay, betas, grad_clip, dropout (auto), train as one stacked model in one process.")]
          = None,
          runs: RunsOpt = Path("runs"),
          wandb: WandbOpt = None,
          print_config: PrintConfigOpt = False,
          ) -> None:
    """Run a W&B sweep file without a server: the same file works with `wandb sweep` + `wandb agent`.
    Runs land in runs/<sweep name>/; `gptlab report <sweep name>` reads them."""
    from gptlab.jobs.devices import parse_devices
    from gptlab.sweep.command import check_command
    from gptlab.sweep.config import load_sweep
    from gptlab.sweep.engine import LocalSweep
    from gptlab.sweep.packing import refuse_hyperband

    if jobs < 1:
        raise UserError("--jobs must be at least 1", key="--jobs", fix="e.g. --jobs 4")
    if count is not None and count < 1:
        raise UserError("--count must be at least 1", key="--count", fix="e.g. --count 20")
    check_wandb_mode(wandb)
    sets = parse_sets(set_)
    loaded = load_sweep(file, sets)
    if print_config:
        echo_sweep_config(loaded, runs, wandb)
        return
    check_command(loaded.command, loaded.config.get("program"), str(file))
    refuse_hyperband(loaded.early_terminate, pack, str(file))
    if loaded.method != "grid" and count is None:
        raise UserError(f"a {loaded.method} sweep never runs out of points", source=str(file), key="--count",
                        fix="give --count N")
    code = LocalSweep(loaded, runs, count=count, n_jobs=jobs, slots=parse_devices(devices), wandb=wandb,
                      pack=pack).execute()
    if code:
        raise typer.Exit(code=code)


def echo_sweep_config(loaded, runs: Path, wandb: str | None) -> None:  # noqa: ANN001 - a SweepFile
    """`--print-config`: the sweep as gptlab runs it (nested groups flattened, --set applied), then the config
    every run shares, with each searched key at its first value."""
    import yaml

    from gptlab.config import build_config, flatten_overrides
    from gptlab.overrides import without_nulls
    from gptlab.sweep.config import point_leaves

    typer.echo(f"# {loaded.path} as gptlab runs it (searched: {', '.join(loaded.searched) or 'nothing'})")
    typer.echo(yaml.safe_dump({k: v for k, v in loaded.config.items() if k != "parameters"} |
                              {"parameters": loaded.config["parameters"]}, sort_keys=False,
                              default_flow_style=None).rstrip())
    first = {p: s["value"] if "value" in s else (s.get("values") or [s.get("min")])[0]
             for p, s in loaded.config["parameters"].items()}
    flat = without_nulls(flatten_overrides(point_leaves(first)))
    flat.update(flatten_overrides(loaded.sets))
    if wandb:
        flat["wandb"] = wandb
    echo_config(build_config(flat), runs / loaded.name / "<each run>")
