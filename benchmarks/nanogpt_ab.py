"""Interleaved A/B of gptlab vs nanoGPT's train.py on nanoGPT's CPU recipe (README: "baby GPT on a CPU").

    python benchmarks/nanogpt_ab.py --nanogpt DIR --repeats 3 --threads 1 --out benchmarks/results/FILE.json

DIR is a checkout of karpathy/nanoGPT whose data/shakespeare_char/ holds train.bin, val.bin and meta.pkl
(written by its prepare.py from the same Tiny Shakespeare text gptlab ships). Each repeat runs both
trainers as fresh processes with the same OMP/MKL thread count, alternating which goes first; the wall
time is the whole process (start-up, data, training, evals, checkpoints). After each run, outside the
timing, the final model of each is scored on one yardstick: the mean loss over every token of the
validation split tiled by non-overlapping 64-token windows (gptlab's validation tokens for both).
nanoGPT runs with --always_save_checkpoint=True so that its checkpoint is its final model, as gptlab's is.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

RECIPE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_steps=2000, dropout=0.0)
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]
# gptlab's keys for the same recipe; eval_steps=20 matches nanoGPT's eval_iters=20 (gptlab evaluates the
# validation split only, on fixed windows; nanoGPT evaluates 20 random batches of train and of val)
GPTLAB_ARGS = [f"{k}={v}" for k, v in RECIPE.items()] + ["eval_steps=20"]


def run_timed(cmd: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one child process. On a shared machine the CPU time is
    the steadier measure of the work done; the wall time is what the target is stated in."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@torch.no_grad()
def yardstick(model, val: torch.Tensor, block_size: int = 64) -> float:
    """Mean next-token loss over every window of the split tiled by non-overlapping windows."""
    from gptlab.dataset import eval_windows, windows_to_batch

    starts = eval_windows(val, block_size, 10 ** 9)
    total, n = 0.0, 0
    for i in range(0, len(starts), 256):
        x, y = windows_to_batch(val, starts[i:i + 256], block_size)  # (b, T), (b, T)
        logits = model(x)
        logits = logits[0] if isinstance(logits, tuple) else logits
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1),
                                                   reduction="sum").item()
        n += y.numel()
    return total / n


def nanogpt_model(nanogpt: Path, ckpt: Path):
    spec = importlib.util.spec_from_file_location("nanogpt_model", nanogpt / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = module.GPT(module.GPTConfig(**state["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state["model"].items()})
    model.eval()

    def logits_all(x):  # nanoGPT returns only the last position's logits without targets
        logits, _ = model(x, targets=x.contiguous())
        return logits
    return logits_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="extra gptlab overrides (key=value)")
    parser.add_argument("--steps", type=int, default=None,
                        help="shorten both runs to this many steps (one eval at the end): a per-step comparison "
                             "when the full recipe would take too long, not the recipe itself")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from gptlab.config import build_config
    from gptlab.dataset import load_data
    from gptlab.train.loading import load_run

    val = load_data(build_config({}).data, 64).val
    nanogpt_args, gptlab_args = list(NANOGPT_ARGS), list(GPTLAB_ARGS)
    if args.steps:
        n = args.steps
        nanogpt_args += [f"--max_iters={n}", f"--lr_decay_iters={n}", f"--eval_interval={n}"]
        gptlab_args += [f"max_steps={n}", f"eval_interval={n}"]
    # the same thread count for both; anything else (dtype, attention kernel, OpenMP's wait policy) each
    # program decides for itself, by its own defaults
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "WANDB_MODE": "disabled"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="nanogpt_ab_") as tmp:
        tmp = Path(tmp)
        for rep in range(args.repeats):
            order = ["nanogpt", "gptlab"] if rep % 2 == 0 else ["gptlab", "nanogpt"]
            for who in order:
                if who == "nanogpt":
                    out_dir = tmp / f"nano{rep}"
                    cmd = [sys.executable, "train.py", *nanogpt_args, f"--out_dir={out_dir}",
                           "--always_save_checkpoint=True"]
                    wall, cpu = run_timed(cmd, args.nanogpt, env, tmp / f"nano{rep}.log")
                    loss = yardstick(nanogpt_model(args.nanogpt, out_dir / "ckpt.pt"), val)
                else:
                    cmd = [sys.executable, "-m", "gptlab", "train", *gptlab_args, *args.set, "--runs", str(tmp),
                           "--name", f"ab{rep}", "--wandb", "disabled"]
                    wall, cpu = run_timed(cmd, Path.cwd(), env, tmp / f"gptlab{rep}.log")
                    loss = yardstick(load_run(tmp / "adhoc" / f"ab{rep}").model, val)
                row = {"repeat": rep, "trainer": who, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                       "load_avg_1min": os.getloadavg()[0], "final_val_full_split": round(loss, 4)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    walls = {who: [r["wall_s"] for r in rows if r["trainer"] == who] for who in ("gptlab", "nanogpt")}
    cpus = {who: [r["cpu_s"] for r in rows if r["trainer"] == who] for who in ("gptlab", "nanogpt")}
    pairs = [g / n for g, n in zip(walls["gptlab"], walls["nanogpt"])]
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": args.threads, "load_avg_at_end": os.getloadavg()},
        "nanogpt_cmd": "python train.py " + " ".join(nanogpt_args) + " --always_save_checkpoint=True",
        "gptlab_cmd": "gptlab train " + " ".join(gptlab_args + args.set) + " --wandb disabled",
        "rows": rows,
        "median_wall_s": {k: statistics.median(v) for k, v in walls.items()},
        "ratio_of_medians": round(statistics.median(walls["gptlab"]) / statistics.median(walls["nanogpt"]), 3),
        "per_pair_ratios": [round(r, 3) for r in pairs],
        "median_cpu_s": {k: statistics.median(v) for k, v in cpus.items()},
        "cpu_ratio_of_medians": round(statistics.median(cpus["gptlab"]) / statistics.median(cpus["nanogpt"]), 3),
        "median_final_val_full_split": {
            who: statistics.median(r["final_val_full_split"] for r in rows if r["trainer"] == who)
            for who in ("gptlab", "nanogpt")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("median_wall_s", "ratio_of_medians", "per_pair_ratios", "median_cpu_s",
                                              "cpu_ratio_of_medians", "median_final_val_full_split")}))


if __name__ == "__main__":
    main()
