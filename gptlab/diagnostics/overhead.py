"""Steps/s of the training update with diagnostics `off` vs `basic` (vs `full`), on the trainer's own
update (gptlab.train.step.TrainStep: data, model, AdamW, clipping, the diagnostics hooks).

    python -m gptlab.diagnostics.overhead [--steps 300] [--repeats 3] [--threads 1] [OVERRIDE ...]

Default config: the tiny CPU model of benchmarks/diagnostics_overhead.md (n_layer=4 n_head=4
n_embd=128 block_size=64 batch_size=12 log_interval=10). Levels alternate within each repeat so
machine noise hits them alike; the median over repeats is reported, both per wall-clock second and
per CPU second of this process (on a shared CPU box, other jobs inflate wall time; with one torch
thread, CPU time is the work the update itself did).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gptlab.config import RunConfig, build_config
from gptlab.dataset import load_data
from gptlab.model import build_model
from gptlab.overrides import parse_overrides
from gptlab.train.device import resolve_runtime
from gptlab.train.optim import lr_at
from gptlab.train.step import TrainStep

TINY_CPU = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "log_interval": 10,
            "device": "cpu"}


def steps_per_s(cfg: RunConfig, level: str, steps: int) -> tuple[float, float, float]:
    """(steps per wall second, steps per CPU second of this process, the extra CPU time of a log
    step over the median other step, as a fraction of that median step, averaged over the interval)."""
    t, rt = cfg.train, resolve_runtime(cfg.train)
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size, diagnostics=level)
    torch.manual_seed(t.seed)
    model = build_model(cfg.model).to(rt.device)
    update = TrainStep(cfg, model, rt, data.train.to(rt.device))  # the trainer's own step, hooks included
    start = cpu_start = 0.0
    log_times: list[float] = []
    other_times: list[float] = []
    for step in range(steps + cfg.log.log_interval):  # the first interval warms up, untimed
        if step == cfg.log.log_interval:
            _sync(rt.device)
            start, cpu_start = time.perf_counter(), time.process_time()
        tick = time.process_time()
        on = update.diag.active(step + 1)
        loss = update(lr_at(step, t), measure=on)
        if (step + 1) % cfg.log.log_interval == 0:
            loss.item()  # the trainer's one sync per log step
            if on:
                update.diag.collect(tokens_per_s=None)
        if start:
            (log_times if (step + 1) % cfg.log.log_interval == 0 else other_times).append(time.process_time() - tick)
    _sync(rt.device)
    typical = statistics.median(other_times)
    extra = (statistics.median(log_times) - typical) / cfg.log.log_interval / typical
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu_start), extra


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levels", default="off,basic,full")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = build_config({**TINY_CPU, **parse_overrides(args.overrides)})
    levels = args.levels.split(",")
    wall: dict[str, list[float]] = {level: [] for level in levels}
    cpu: dict[str, list[float]] = {level: [] for level in levels}
    extra: dict[str, list[float]] = {level: [] for level in levels}
    for _ in range(args.repeats):
        for level in levels:
            w, c, e = steps_per_s(cfg, level, args.steps)
            wall[level].append(w)
            cpu[level].append(c)
            extra[level].append(e)
    print(f"torch threads {torch.get_num_threads()}, {args.steps} steps x {args.repeats} repeats, "
          f"log_interval {cfg.log.log_interval}")
    for name, results in (("wall", wall), ("cpu", cpu)):
        base = statistics.median(results[levels[0]])
        for level in levels:
            med = statistics.median(results[level])
            runs = ", ".join(f"{r:.2f}" for r in results[level])
            print(f"{name:4s} {level:6s} {med:7.2f} steps/s  ({runs})  "
                  f"time per step vs {levels[0]}: {100 * (base / med - 1):+.1f}%")
    for level in levels:
        print(f"log-step cost {level:6s} (median log step - median other step) / log_interval: "
              f"{100 * statistics.median(extra[level]):+.2f}% of a step")


if __name__ == "__main__":
    main()
