"""Loss parity with nanoGPT on its CPU recipe, over seeds: gptlab as it runs by default vs nanoGPT's train.py.

    python benchmarks/parity_seeds.py --nanogpt DIR --seeds 8 --jobs 2 --out benchmarks/results/FILE.json

Arms (each trained once per seed, 2000 steps of the recipe, as fresh processes, `--jobs` at a time with one
thread each; only the loss is compared here, so the load does not matter):
- `gptlab`: `gptlab train` with the recipe's keys and nothing else (dtype auto: bf16 autocast on a CPU
  with bf16 matmuls, as this speed change makes it);
- `gptlab_fp32`: the same with `dtype=float32` (the arithmetic of gptlab before the change);
- `nanogpt`: nanoGPT's train.py, seeded 1337 + seed (a copy of train.py whose only change is that seed,
  which upstream fixes at 1337).
Every final model is scored on one yardstick (nanogpt_ab.yardstick: mean loss over every token of the
validation split, non-overlapping 64-token windows). The statistics: Welch's t-test (scipy) and the
two one-sided tests for equivalence within --margin nats (statsmodels), gptlab vs nanoGPT, and a paired
t-test of gptlab vs gptlab_fp32 on the same seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind

from nanogpt_ab import GPTLAB_ARGS, NANOGPT_ARGS, nanogpt_model, yardstick

ARMS = ("gptlab", "gptlab_fp32", "nanogpt")


def seeded_train_py(nanogpt: Path) -> Path:
    """nanoGPT's train.py with `torch.manual_seed(1337 + seed_offset)` offset by $SEED, beside the original."""
    text = (nanogpt / "train.py").read_text()
    old = "torch.manual_seed(1337 + seed_offset)"
    if old not in text:
        raise SystemExit(f"{nanogpt / 'train.py'}: no '{old}' to seed")
    out = nanogpt / "train_seeded.py"
    out.write_text(text.replace(old, "torch.manual_seed(1337 + seed_offset + int(os.environ['SEED']))"))
    return out


def train(arm: str, seed: int, nanogpt: Path, tmp: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled",
           "SEED": str(seed)}
    log = tmp / f"{arm}{seed}.log"
    if arm == "nanogpt":
        out_dir = tmp / f"nano{seed}"
        cmd = [sys.executable, "train_seeded.py", *NANOGPT_ARGS, f"--out_dir={out_dir}",
               "--always_save_checkpoint=True"]
        cwd = nanogpt
    else:
        extra = ["dtype=float32"] if arm == "gptlab_fp32" else []
        cmd = [sys.executable, "-m", "gptlab", "train", *GPTLAB_ARGS, f"seed={seed}", *extra, "--runs", str(tmp),
               "--name", f"{arm}{seed}", "--wandb", "disabled"]
        cwd = Path.cwd()
    with open(log, "w") as f:
        subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    return {"arm": arm, "seed": seed}


def score(row: dict, nanogpt: Path, tmp: Path, val: torch.Tensor) -> float:
    from gptlab.train.loading import load_run

    if row["arm"] == "nanogpt":
        return yardstick(nanogpt_model(nanogpt, tmp / f"nano{row['seed']}" / "ckpt.pt"), val)
    return yardstick(load_run(tmp / "adhoc" / f"{row['arm']}{row['seed']}").model, val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.02, help="equivalence margin in nats (TOST)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from gptlab.config import build_config
    from gptlab.dataset import load_data
    from gptlab.train.device import resolve_runtime

    val = load_data(build_config({}).data, 64).val
    seeded_train_py(args.nanogpt)
    with tempfile.TemporaryDirectory(prefix="parity_") as tmp:
        tmp = Path(tmp)
        jobs = [(arm, seed) for seed in range(args.seeds) for arm in ARMS]
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(lambda job: train(*job, args.nanogpt, tmp), jobs))
        for row in rows:
            row["final_val_full_split"] = round(score(row, args.nanogpt, tmp, val), 5)
            print(json.dumps(row), flush=True)
    losses = {arm: [r["final_val_full_split"] for r in rows if r["arm"] == arm] for arm in ARMS}
    welch = stats.ttest_ind(losses["gptlab"], losses["nanogpt"], equal_var=False)
    tost_p, _, _ = ttost_ind(losses["gptlab"], losses["nanogpt"], -args.margin, args.margin, usevar="unequal")
    paired = stats.ttest_rel(losses["gptlab"], losses["gptlab_fp32"])
    rt = resolve_runtime(build_config({**dict(a.split("=") for a in GPTLAB_ARGS)}).train)
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "gptlab_default_runtime": {"dtype": str(rt.dtype), "attn_backend": rt.attn_backend},
        "rows": rows,
        "mean_sd": {arm: [round(statistics.mean(v), 4), round(statistics.stdev(v), 4)] for arm, v in losses.items()},
        "gptlab_vs_nanogpt": {"difference": round(statistics.mean(losses["gptlab"]) - statistics.mean(losses["nanogpt"]), 4),
                              "welch_p": round(float(welch.pvalue), 4), "margin": args.margin,
                              "tost_p": round(float(tost_p), 4)},
        "gptlab_vs_gptlab_fp32_paired": {
            "difference": round(statistics.mean(a - b for a, b in zip(losses["gptlab"], losses["gptlab_fp32"])), 4),
            "p": round(float(paired.pvalue), 4)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("mean_sd", "gptlab_vs_nanogpt", "gptlab_vs_gptlab_fp32_paired")}))


if __name__ == "__main__":
    main()
