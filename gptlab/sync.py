"""`gptlab sync`: upload the store's offline W&B runs with W&B's own `wandb sync`.

Each run keeps its W&B files beside its results (`runs/<experiment>/<run>/wandb/`), so a run directory
copied off an air-gapped cluster carries them and `--rerun all` clears them with the run. Every start of
a run (the first and each resume) writes one `offline-run-<time>-<id>/` folder with the same id; they
are passed to `wandb sync` together, which replays the folders of one run in order of start time as
that one run. `wandb sync` marks each uploaded log with a `run-<id>.wandb.synced` file beside it;
marked folders are skipped.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gptlab.errors import UserError


@dataclass(frozen=True)
class OfflineRun:
    experiment: str
    run: str
    folder: Path  # runs/<experiment>/<run>/wandb/offline-run-<time>-<id>
    log: Path     # its run-<id>.wandb

    @property
    def synced(self) -> bool:
        return self.log.with_suffix(".wandb.synced").exists()  # W&B's own marker (`wandb sync`, `wandb clean`)


def find_offline_runs(runs_root: str | Path, experiments: list[str] | None = None) -> list[OfflineRun]:
    """Every offline W&B folder in the store, by experiment and run, each run's folders oldest first."""
    root = Path(runs_root)
    if not root.is_dir():
        raise UserError("run store not found", source=str(root), fix="train first, or point --runs at a run store")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    for name in experiments or []:
        if name not in names:
            raise UserError(f"no experiment '{name}' in the store", source=str(root),
                            fix=f"choose from: {', '.join(names) or '(none yet)'}")
    found = []
    for experiment in experiments or names:
        for run_dir in sorted(p for p in (root / experiment).iterdir() if p.is_dir()):
            for log in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
                found.append(OfflineRun(experiment, run_dir.name, log.parent, log))
    return found


def wandb_sync_command(pending: list[OfflineRun]) -> list[str]:
    """One `wandb sync` call for all of them: W&B groups the logs of one run id and replays them in order."""
    return [sys.executable, "-m", "wandb", "sync", "--skip-synced", *(str(r.log) for r in pending)]


def sync(runs_root: str | Path, experiments: list[str] | None = None, dry_run: bool = False) -> int:
    """Print what is (or would be) uploaded; returns `wandb sync`'s exit code (0 when there is nothing)."""
    found = find_offline_runs(runs_root, experiments)
    pending = [r for r in found if not r.synced]
    skipped = len(found) - len(pending)
    note = f" ({skipped} already synced, skipped)" if skipped else ""
    if not pending:
        print(f"no offline W&B runs to sync in {runs_root}{note}")
        return 0
    runs = {(r.experiment, r.run) for r in pending}
    print(f"{'would sync' if dry_run else 'syncing'} {len(pending)} offline W&B folder(s) of {len(runs)} run(s)"
          f"{note}:")
    for r in pending:
        print(r.folder)
    if dry_run:
        return 0
    return subprocess.run(wandb_sync_command(pending), check=False).returncode
