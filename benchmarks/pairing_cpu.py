"""How well seed s of a variant pairs with seed s of the baseline: issue 30's table (benchmarks/pairing.md).

For every built-in axis, each non-default value is a variant of one small CPU recipe; every variant and the
baseline train the same seeds (`gptlab run SPEC --pack seeds`), twice: with the name-keyed initial weights
(gptlab/model/init.py) and with the shared-stream init (every weight drawn from torch's global generator
in module order, as gptlab <= 0.3: GPTLAB_INIT_STREAMS=shared, a switch that exists for this script only).
Per variant and init: the correlation across seeds of final val loss with the baseline's, the seeds factor
(sd_a^2 + sd_b^2) / sd_diff^2 (how many times more seeds an unpaired comparison needs than a paired one for
the same precision), and the mean paired difference.

    OMP_NUM_THREADS=1 python benchmarks/pairing_cpu.py --out benchmarks/results/pairing_cpu.json

--steps / --seeds shrink it (the record in pairing.md says what was used).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gptlab.axes import AXES, Axis, check_combination  # noqa: E402

BASE = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64, "batch_size": 16, "dropout": 0.0,
        "max_steps": 400, "warmup_steps": 40, "lr": 2.0e-3, "min_lr": 2.0e-4, "eval_interval": 400,
        "eval_steps": 10, "log_interval": 100, "wandb": "disabled", "diagnostics": "off"}


def variants() -> dict[str, dict]:
    """base, and one variant per non-default value of every built-in axis (a value the defaults cannot
    take, by a declared exclusion, is left out)."""
    defaults = {name: axis.default for name, axis in AXES.items()}
    out: dict[str, dict] = {"base": {}}
    for name, axis in AXES.items():
        for value in axis.values(lambda origin: False)[1:]:
            try:
                check_combination({**defaults, name: value})
            except Exception:  # noqa: BLE001 - an excluded combination
                continue
            out[f"{name}={Axis.spell(value)}"] = {name: value}
    return out


def spec(name: str, seeds: list[int], steps: int, only: list[str] | None) -> dict:
    base = {**BASE, "max_steps": steps, "eval_interval": steps, "warmup_steps": steps // 10}
    chosen = {k: v for k, v in variants().items() if only is None or k in only or k == "base"}
    return {"name": name, "description": "issue 30: pairing of seeds across variants",
            "base": base, "variants": {k.replace("=", "_"): v for k, v in chosen.items()}, "seeds": seeds}


def train(mode: str, seeds: list[int], steps: int, work: Path, jobs: int, only: list[str] | None) -> tuple[Path, float]:
    """Train (or finish: a run already finished in the store is not trained again) every chosen variant."""
    name = f"pairing_{mode}"
    spec_path = work / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec(name, seeds, steps, only), sort_keys=False))
    store = work / f"runs_{mode}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    if mode == "shared":
        env["GPTLAB_INIT_STREAMS"] = "shared"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gptlab", "run", str(spec_path), "--runs", str(store), "--pack", "seeds",
                    "--jobs", str(jobs)], env=env, check=True, stdout=subprocess.DEVNULL)
    return store / name, time.perf_counter() - t0


def finals(run_dir: Path) -> dict[str, dict[int, float]]:
    """variant -> seed -> final val loss, from the run store (config.yaml's run section, summary.json)."""
    out: dict[str, dict[int, float]] = {}
    for summary in sorted(run_dir.glob("*/summary.json")):
        s = json.loads(summary.read_text())
        run = yaml.safe_load((summary.parent / "config.yaml").read_text())["run"]
        if s.get("status") == "finished":
            out.setdefault(run["variant"], {})[int(run["seed"])] = s["final_val_loss"]
    return out


def pairing(base: dict[int, float], other: dict[int, float]) -> dict:
    seeds = sorted(set(base) & set(other))
    a, b = [other[s] for s in seeds], [base[s] for s in seeds]
    diff = [x - y for x, y in zip(a, b)]
    sd_a, sd_b, sd_d = statistics.stdev(a), statistics.stdev(b), statistics.stdev(diff)
    corr = statistics.correlation(a, b) if sd_a > 0 and sd_b > 0 else float("nan")
    return {"pairs": len(seeds), "corr": corr, "seeds_factor": (sd_a ** 2 + sd_b ** 2) / sd_d ** 2 if sd_d > 0 else
            float("inf"), "diff": statistics.fmean(diff), "sd_variant": sd_a, "sd_base": sd_b, "sd_diff": sd_d}


def table(results: dict) -> str:
    rows = ["| variant vs baseline | corr, name-keyed | corr, shared stream | seeds factor, name-keyed | "
            "seeds factor, shared stream | diff (nats), name-keyed |", "|---|---|---|---|---|---|"]
    for v, r in results["variants"].items():
        k, s = r["keyed"], r["shared"]
        rows.append(f"| {v} | {k['corr']:.2f} | {s['corr']:.2f} | {k['seeds_factor']:.1f}x | "
                    f"{s['seeds_factor']:.1f}x | {k['diff']:+.4f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gptlab_pairing"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pairing_cpu.json")
    ap.add_argument("--variants", help="comma-separated subset, e.g. pos_encoding=rope,tie_weights=false")
    ap.add_argument("--fresh", action="store_true", help="discard the work folder's stores first")
    args = ap.parse_args()
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    only = args.variants.split(",") if args.variants else None
    got, wall = {}, {}
    for mode in ("keyed", "shared"):
        run_dir, wall[mode] = train(mode, seeds, args.steps, args.work, args.jobs, only)
        got[mode] = finals(run_dir)
    names = {k.replace("=", "_"): k for k in variants() if only is None or k in only or k == "base"}
    results = {"recipe": {**BASE, "max_steps": args.steps}, "seeds": seeds, "wall_s": wall,
               "machine": {"cpu": _cpu(), "python": platform.python_version(), "cores": os.cpu_count(),
                           "load_before": os.getloadavg()}, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "variants": {}}
    for key, label in names.items():
        if key == "base":
            continue
        results["variants"][label] = {mode: pairing(got[mode]["base"], got[mode][key]) for mode in got}
    for mode, variant_runs in got.items():  # finished in the store by an earlier, longer invocation
        for key in sorted(set(variant_runs) - set(names) - {"base"}):
            results.setdefault("more_" + mode, {})[key] = pairing(variant_runs["base"], variant_runs[key])
    results["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
