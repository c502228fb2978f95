"""`gptlab report [EXPERIMENT ...]`: plots, tables and findings from stored runs into reports/.

Thin: parses options and hands off to `gptlab.report.build.write_reports`. pandas, scipy and
matplotlib are imported inside the command so `gptlab --help` stays fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gptlab.cli.common import complete_experiments


def report(
    experiments: Annotated[Optional[list[str]], typer.Argument(
        help="Experiments to report (default: every experiment in the store).", show_default=False,
        autocompletion=complete_experiments)] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Run store root.")] = Path("runs"),
    out: Annotated[Path, typer.Option("--out", help="Where reports/<experiment>/ and the index go.")] = Path("reports"),
    wandb_project: Annotated[Optional[str], typer.Option(
        "--wandb-project", metavar="ENTITY/PROJECT",
        help="Also load the runs of this W&B project (needs network). (--wandb is a W&B mode on train, run "
             "and sweep.)")] = None,
    wandb_dir: Annotated[Optional[Path], typer.Option(
        "--wandb-dir", help="Also load W&B offline run directories found under this path.")] = None,
    log_x: Annotated[bool, typer.Option("--log-x", help="Log-scale steps in the learning curves.")] = False,
) -> None:
    """Write report.md, a self-contained report.html, summary.csv and figures per experiment."""
    from gptlab.report.build import write_reports

    folders = write_reports(runs=runs, out=out, experiments=list(experiments or []) or None,
                            wandb_project=wandb_project, wandb_dir=wandb_dir, log_x=log_x)
    for folder in folders:
        typer.echo(f"wrote {folder / 'report.md'}")
    typer.echo(f"wrote {out / 'index.md'}")
