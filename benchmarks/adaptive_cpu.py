"""Issue 21's CPU target: an adaptive-seeds study against the fixed design of equal power.

A (adaptive): `gptlab run SPEC --pack auto` (default --jobs) into a fresh store, then `gptlab report`. The fixed
design of equal power is the one the report's "Design: adaptive seeds" section states (read from report.md):
one seed list for every variant, n the smallest at which the fixed design, analysed the same way and simulated
at A's observed differences and seed spread, reaches A's simulated power on every comparison
(gptlab.stats.sequential_sim.equal_power_fixed). B (fixed): that design trained one seed at a time
(`gptlab run FIXED_SPEC --jobs 1`, no pack). Arms alternate A, B, A, B; the fixed design is taken from the
first A. No OMP_NUM_THREADS is set: gptlab gives each of its parallel jobs its share of the cores.

    python benchmarks/adaptive_cpu.py --repeats 2 --out benchmarks/results/adaptive_cpu_v2.json

The first scenario (benchmarks/specs/adaptive_cpu.yaml, results/adaptive_cpu.json) was measured with an
earlier version of this script (fixed design per comparison, --pack seeds, OMP_NUM_THREADS=1); see
adaptive_cpu.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tuning_pack import machine, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "benchmarks/specs/adaptive_cpu_v2.yaml"
EXPERIMENT = yaml.safe_load(SPEC.read_text())["name"]
FIXED = EXPERIMENT + "_fixed"


def report(experiment: str, store: Path, env: dict) -> dict:
    out = store.parent / (store.name + "_reports")
    shutil.rmtree(out, ignore_errors=True)
    r = timed([sys.executable, "-m", "gptlab", "report", experiment, "--runs", str(store), "--out", str(out)], env)
    d = out / experiment
    rows = list(csv.DictReader((d / "summary.csv").open())) if (d / "summary.csv").is_file() else []
    md = (d / "report.md").read_text() if (d / "report.md").is_file() else ""
    return {"exit_code": r["exit_code"], "summary_csv": rows, "report_md": md}


def runs_in(store: Path, experiment: str) -> dict[str, float | None]:
    got = {}
    for s in sorted((store / experiment).glob("*/summary.json")):
        d = json.loads(s.read_text())
        got[s.parent.name] = d.get("best_val_loss") if d.get("status") == "finished" else None
    return got


def adaptive_arm(store: Path, env: dict) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    m = timed([sys.executable, "-m", "gptlab", "run", str(SPEC.relative_to(ROOT)), "--runs", str(store),
               "--pack", "auto"], env)
    m["decision_table"] = m["stdout"][m["stdout"].rfind("adaptive seeds: decided"):]
    m["stdout"] = m["stdout"][-4000:]
    m["runs"] = runs_in(store, EXPERIMENT)
    m["n_runs"] = len(m["runs"])
    m["report"] = report(EXPERIMENT, store, env)
    return m


def fixed_design(arm: dict) -> dict:
    """The fixed design of equal power as the adaptive study's own report states it."""
    md = arm["report"]["report_md"]
    m = re.search(r"This design's power at the observed differences and seed spread \(sd ([\d.e-]+); simulated\): "
                  r"([^.]*(?:\.\d+[^.]*)*)\. A fixed design \(one seed list for every variant\) with at least that "
                  r"power on every comparison needs (\d+) seeds per variant, (\d+) runs", md)
    if not m:
        raise SystemExit("the adaptive report has no fixed-design sentence: " + md[-2000:])
    sentence = md[md.rfind("Runs trained:", 0, m.start()):md.find("\n", m.end())]
    return {"pooled_sd": float(m.group(1)), "adaptive_power": m.group(2), "n": int(m.group(3)),
            "total_runs": int(m.group(4)), "report_sentence": sentence}


def write_fixed_spec(n: int) -> Path:
    src = yaml.safe_load(SPEC.read_text())
    spec = {"name": FIXED, "description": f"The fixed design of equal power for {EXPERIMENT}: {n} seeds per variant.",
            "base": src["base"], "variants": src["variants"], "seeds": list(range(n)), "compare": src["compare"]}
    path = ROOT / f"benchmarks/specs/{FIXED}.yaml"
    path.write_text(f"# Written by benchmarks/adaptive_cpu.py from the first adaptive run's report.\n"
                    + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=110))
    return path


def fixed_arm(store: Path, spec: Path, env: dict) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    parts = [timed([sys.executable, "-m", "gptlab", "run", str(p.relative_to(ROOT)), "--runs", str(store),
                    "--jobs", "1"], env) for p in [spec]]
    for p in parts:
        p["stdout"] = p["stdout"][-1500:]
    runs = runs_in(store, FIXED)
    return {"parts": parts, "wall_s": round(sum(p["wall_s"] for p in parts), 2),
            "cpu_s": round(sum(p["cpu_s"] for p in parts), 2), "exit_codes": [p["exit_code"] for p in parts],
            "uptime_before": parts[0]["uptime_before"], "uptime_after": parts[-1]["uptime_after"],
            "runs": runs, "n_runs": len(runs), "report": report(FIXED, store, env)}


def load1(s: str) -> float:
    return float(re.search(r"load average: ([\d.]+)", s).group(1))


def main() -> None:
    global SPEC, EXPERIMENT, FIXED
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--spec", default=str(SPEC.relative_to(ROOT)), help="the adaptive study (a replication: another spec)")
    ap.add_argument("--store", default="/tmp/gptlab_adaptive_cpu")
    ap.add_argument("--out", default="benchmarks/results/adaptive_cpu_v2.json")
    args = ap.parse_args()
    SPEC = ROOT / args.spec
    EXPERIMENT = yaml.safe_load(SPEC.read_text())["name"]
    FIXED = EXPERIMENT + "_fixed"
    env = {**os.environ, "WANDB_MODE": "offline"}
    out = {"what": "issue 21 CPU target: adaptive seeds (--pack auto) vs the fixed design of equal power (--jobs 1)",
           "machine": machine(), "env": {"OMP_NUM_THREADS": env.get("OMP_NUM_THREADS"), "WANDB_MODE": "offline"},
           "spec": SPEC.read_text(), "measurements": []}
    spec: Path | None = None
    for rep in range(args.repeats):
        a = adaptive_arm(Path(args.store) / f"adaptive{rep}", env)
        a.update(arm="adaptive", repeat=rep)
        out["measurements"].append(a)
        print(f"repeat {rep} adaptive: {a['n_runs']} runs, {a['wall_s']} s, {a['uptime_after']}\n{a['decision_table']}",
              flush=True)
        if rep == 0:
            out["fixed_design"] = fixed_design(a)
            spec = write_fixed_spec(out["fixed_design"]["n"])
            out["fixed_spec"] = spec.read_text()
            print("fixed design:", json.dumps(out["fixed_design"]), flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
        b = fixed_arm(Path(args.store) / f"fixed{rep}", spec, env)
        b.update(arm="fixed", repeat=rep)
        out["measurements"].append(b)
        print(f"repeat {rep} fixed: {b['n_runs']} runs, {b['wall_s']} s, {b['uptime_after']}", flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    walls = {arm: [m["wall_s"] for m in out["measurements"] if m["arm"] == arm] for arm in ("adaptive", "fixed")}
    runs = {arm: [m["n_runs"] for m in out["measurements"] if m["arm"] == arm] for arm in ("adaptive", "fixed")}
    out["result"] = {
        "runs": runs, "runs_ratio_adaptive_over_fixed": [a / f for a, f in zip(runs["adaptive"], runs["fixed"])],
        "median_wall_s": {k: statistics.median(v) for k, v in walls.items()},
        "wall_ratio_per_repeat": [a / f for a, f in zip(walls["adaptive"], walls["fixed"])],
        "wall_ratio_of_medians": statistics.median(walls["adaptive"]) / statistics.median(walls["fixed"]),
        "load1_range": [min(load1(m[k]) for m in out["measurements"] for k in ("uptime_before", "uptime_after")),
                        max(load1(m[k]) for m in out["measurements"] for k in ("uptime_before", "uptime_after"))],
        "targets": {"runs <= 0.7x fixed": None, "wall <= 0.3x fixed": None}}
    r = out["result"]
    r["targets"]["runs <= 0.7x fixed"] = all(x <= 0.7 for x in r["runs_ratio_adaptive_over_fixed"])
    r["targets"]["wall <= 0.3x fixed"] = r["wall_ratio_of_medians"] <= 0.3
    if not math.isnan(r["wall_ratio_of_medians"]):
        Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
