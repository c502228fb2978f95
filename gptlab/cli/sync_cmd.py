"""`gptlab sync [EXPERIMENT ...]`: upload the store's offline W&B runs with W&B's own sync."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gptlab.cli.common import RunsOpt, complete_experiments


def sync(experiments: Annotated[list[str] | None, typer.Argument(
             help="Experiments to sync (default: every experiment in the store).", show_default=False,
             autocompletion=complete_experiments)] = None,
         runs: RunsOpt = Path("runs"),
         dry_run: Annotated[bool, typer.Option("--dry-run", help="List the offline run folders; upload nothing.")]
         = False,
         ) -> None:
    """Upload offline W&B runs (`--wandb offline`, or auto without credentials) with `wandb sync`: every run,
    resumed ones as one W&B run, skipping folders W&B has marked synced."""
    from gptlab.sync import sync as sync_runs

    code = sync_runs(runs, list(experiments or []) or None, dry_run=dry_run)
    if code:
        raise typer.Exit(code=1)
