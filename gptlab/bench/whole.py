"""Whole-run measurements: logging overhead of a real run, and a packed vs sequential grid."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml

from gptlab.config import RunConfig
from gptlab.train import RunMeta, run_training


def logging_overhead(cfg: RunConfig) -> dict:
    """Training throughput of a real run with W&B offline + local store + basic diagnostics vs all
    logging off (local store only, which is always written). Eval time is excluded by the trainer."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, changes in (("logging off", {"wandb": "disabled", "diagnostics": "off"}),
                               ("W&B offline + basic diagnostics", {"wandb": "offline", "diagnostics": "basic"})):
            summary = run_training(cfg.replace(**changes), Path(tmp), RunMeta(experiment="bench", name=label))
            results[label] = summary["tokens_per_s"]
    off, on = results["logging off"], results["W&B offline + basic diagnostics"]
    return {"tokens_per_s": results, "overhead_pct": round(100.0 * (off / on - 1.0), 2)}


def grid_ratio(overrides: dict, n_runs: int, jobs: int, wandb: str = "disabled") -> dict:
    """Wall time of the same n_runs-run study executed one after another vs `jobs` at once."""
    from gptlab.jobs.devices import parse_devices
    from gptlab.runner.execute import Study, plan
    from gptlab.runner.spec import load_spec
    from gptlab.jobs.view import PlainView

    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "bench_grid.yaml"
        spec_path.write_text(yaml.safe_dump({"name": "bench_grid", "base": overrides,
                                             "seeds": list(range(n_runs))}))
        for label, n_jobs in (("sequential", 1), (f"packed ({jobs} at once)", jobs)):
            runs = Path(tmp) / label.split()[0]
            spec = load_spec(spec_path)
            start = time.perf_counter()
            study = Study(spec, plan(spec, runs, None), runs, n_jobs=n_jobs, slots=parse_devices(None),
                          wandb=wandb, fail_fast=False, view=PlainView(stream=open("/dev/null", "w")))
            code = study.execute()
            walls[label] = {"wall_s": round(time.perf_counter() - start, 2), "exit_code": code}
    seq, packed = (v["wall_s"] for v in walls.values())
    return {"runs": n_runs, "jobs": jobs, "walls": walls, "speedup": round(seq / packed, 3)}
