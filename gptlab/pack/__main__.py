"""`python -m gptlab.pack PAYLOAD`: the process that trains one pack (started by `gptlab run --pack`).

PAYLOAD is the JSON written by gptlab.pack.plan.pack_command. Exit codes as `gptlab train`: 0 every
member finished, 1 one failed or diverged (or was being run by another process), 2 bad input,
130 interrupted (checkpoints kept; rerun to resume).
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from gptlab.errors import UserError


def _sigterm_as_interrupt(signum, frame):  # noqa: ANN001
    from gptlab.train.trainer import repeated_stop  # loaded by then: only a run's stop can be repeated

    if repeated_stop():  # the TERM a run already stopped for, sent again (Slurm: TERM, CONT, TERM)
        return
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    from gptlab.config import build_config
    from gptlab.pack.loop import run_pack
    from gptlab.train.trainer import RunMeta

    payload = json.loads(argv[0])
    runs_root = Path(payload["runs"])
    members = payload["members"]
    cfgs, metas = [], []
    for m in members:
        flat = dict(m["flat"])
        if payload.get("wandb"):
            flat["wandb"] = payload["wandb"]
        cfgs.append(build_config(flat))
        metas.append(RunMeta(experiment=payload["experiment"], name=m["name"], variant=m["variant"],
                             overrides=m["overrides"], study=m.get("study") or {}))
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        summaries = run_pack(cfgs, metas, runs_root, fresh=[m["fresh"] for m in members],
                             expect=[m.get("expect") for m in members])
    except KeyboardInterrupt:
        print(f"\ninterrupted: pack of {len(members)} runs in {runs_root / payload['experiment']} "
              "(rerun the same command to resume)", file=sys.stderr)
        return 130
    for meta, summary in zip(metas, summaries):
        best = summary.get("best_val_loss")
        best_s = f"{best:.4f}" if best is not None else "n/a"
        print(f"{summary['status']}: {runs_root / meta.experiment / meta.name} | best val loss {best_s} | "
              f"{summary.get('steps')} steps | {summary.get('wall_s') or 0:.1f}s")
    return 0 if all(s["status"] == "finished" for s in summaries) else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UserError as err:
        print(err.one_line(), file=sys.stderr)
        sys.exit(2)
