"""0.4.0's training step against 0.3.1's, side by side: the same `gptlab train` recipe run alternately by both
code versions (0.3.1 from a checkout given by --before, e.g. `git worktree add /tmp/v031 06f51c0`), reporting
each run's CPU seconds (user + sys, steadier than wall on a shared machine), wall and final val loss.

    OMP_NUM_THREADS=2 python benchmarks/step_ab_0_3.py --before /tmp/v031 --repeats 3 --out benchmarks/results/step_ab_0_3.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = ["n_layer=4", "n_head=4", "n_embd=128", "block_size=64", "batch_size=12", "dropout=0", "max_steps=300",
          "eval_interval=300", "eval_steps=20", "log_interval=50", "wandb=disabled", "diagnostics=off"]


def one(code: Path | None, runs: Path, name: str) -> dict:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gptlab", "train", *RECIPE, "--runs", str(runs), "--name", name],
                         env=env, capture_output=True, text=True, cwd=str(code) if code else None)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    summary = json.loads(next(runs.rglob(f"{name}/summary.json")).read_text())
    return {"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "wall_s": wall,
            "final_val_loss": summary.get("final_val_loss"), "tokens_per_s": summary.get("tokens_per_s")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="step-ab-"))
    rows: dict[str, list[dict]] = {"0.3.1": [], "0.4.0": []}
    for rep in range(args.repeats):
        for arm in (("0.3.1", "0.4.0") if rep % 2 == 0 else ("0.4.0", "0.3.1")):
            code = args.before if arm == "0.3.1" else None
            rows[arm].append(one(code, work / arm, f"r{rep}"))
            print(arm, rep, {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[arm][-1].items()},
                  "load", round(os.getloadavg()[0], 1), flush=True)
    med = {arm: {k: statistics.median(r[k] for r in rs) for k in ("cpu_s", "wall_s", "tokens_per_s")}
           for arm, rs in rows.items()}
    ratio = {k: med["0.4.0"][k] / med["0.3.1"][k] for k in ("cpu_s", "wall_s")}
    print("medians", med, "0.4.0 / 0.3.1", ratio)
    args.out.write_text(json.dumps({"recipe": RECIPE, "rows": rows, "medians": med, "ratio_0.4_over_0.3": ratio,
                                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                    "loadavg_end": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
