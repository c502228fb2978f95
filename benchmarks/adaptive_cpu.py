"""Issue 21's CPU target: an adaptive-seeds study against the fixed design of equal power.

A (adaptive): `gptlab run benchmarks/specs/adaptive_cpu.yaml --pack seeds` into a fresh store, then
`gptlab report`. The fixed design of equal power is computed from A's observed differences and seed spread the
way the report's "Design: adaptive seeds" section does (gptlab.analysis.sequential.fixed_design_seeds per
comparison, the baseline at the largest n). B (fixed): that design trained one seed at a time (`--jobs 1`, no
pack): one spec per distinct n (benchmarks/specs/adaptive_cpu_fixed_n<n>.yaml, each with the baseline and the
variants needing n seeds, one experiment name and one store, so the baseline's seeds train once), smallest n
first; its wall time is the sum. Arms alternate A, B, A, B; the fixed design is computed once, from the first A.

    python benchmarks/adaptive_cpu.py --repeats 2 --out benchmarks/results/adaptive_cpu.json
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
SPEC = ROOT / "benchmarks/specs/adaptive_cpu.yaml"
FIXED = "adaptive_cpu_fixed"


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
               "--pack", "seeds"], env)
    m["decision_table"] = m["stdout"][m["stdout"].rfind("adaptive seeds: decided"):]
    m["stdout"] = m["stdout"][-4000:]
    m["runs"] = runs_in(store, "adaptive_cpu")
    m["n_runs"] = len(m["runs"])
    m["report"] = report("adaptive_cpu", store, env)
    return m


def fixed_design(store: Path) -> dict:
    """Seeds per variant of the fixed design of the same power, as the report's "Design: adaptive seeds" section
    computes it (gptlab/analysis/sections/adaptive.py, commit b69f311): the adaptive design's power per
    comparison simulated (2000 studies) at the observed differences and the pooled seed sd, then
    fixed_design_seeds at that power; the baseline at the largest n."""
    import numpy as np

    from gptlab.analysis.sequential import fixed_design_seeds
    from gptlab.analysis.sequential_sim import simulate
    from gptlab.runner.spec import load_spec
    from gptlab.study.adaptive import replay_store

    spec = load_spec(SPEC)
    state = replay_store(spec, store, None)
    values: dict[str, list[float]] = {}
    for name, v in runs_in(store, "adaptive_cpu").items():
        if v is not None:
            values.setdefault(name.rsplit("-seed", 1)[0], []).append(v)
    sd_of = {c: statistics.stdev(v) for c, v in values.items()}
    d = state.design
    outcomes = list(state.outcomes.values())
    sd = float(np.mean([(sd_of[o.pair.variant] + sd_of[o.pair.baseline]) / 2 for o in outcomes]))
    diffs = [o.result.diff for o in outcomes]
    power = simulate(d, diffs, sd, n_studies=2000, seed=0).power()
    per, notes = {}, []
    for o, x, p in zip(outcomes, diffs, power):
        p = float(min(max(p, 0.5), 0.999))
        try:
            n = fixed_design_seeds(x, sd, margin=d.margin, power=p, n_comparisons=d.n_comparisons)
        except ValueError:  # statsmodels' solver returns nan when fewer than 2 seeds would do (huge effect)
            n = 2
            notes.append(f"{o.pair.variant}: fixed_design_seeds raised (statsmodels returned nan for effect "
                         f"{abs(x) / sd:.1f} sd); taken as its floor of 2 seeds")
        per[o.pair.variant] = {"diff": x, "ci": [o.result.ci_low, o.result.ci_high], "look_seeds": o.result.n,
                               "stopped": o.stopped, "round": o.round, "simulated_power": p, "fixed_n": n}
    for o, x in zip(outcomes, diffs):  # for reference: the fixed design at the conventional 80% power
        try:
            per[o.pair.variant]["fixed_n_at_80pct_power"] = fixed_design_seeds(
                x, sd, margin=d.margin, n_comparisons=d.n_comparisons)
        except ValueError:
            per[o.pair.variant]["fixed_n_at_80pct_power"] = 2
    base = spec.compare.baseline
    seeds = {base: max(q["fixed_n"] for q in per.values()), **{k: q["fixed_n"] for k, q in per.items()}}
    n80 = [q["fixed_n_at_80pct_power"] for q in per.values()]
    return {"total_runs_at_80pct_power (not trained)": sum(n80) + max(n80),"pooled_sd": sd, "seed_sd_per_variant": sd_of, "per_comparison": per, "seeds": seeds,
            "total_runs": sum(seeds.values()), "adaptive_seeds": state.seeds, "notes": notes}


def write_fixed_specs(seeds: dict[str, int]) -> list[Path]:
    """One spec per distinct n (the baseline in each, so each compares; its seeds overlap and train once)."""
    src = yaml.safe_load(SPEC.read_text())
    base = src["compare"]["baseline"]
    paths = []
    for n in sorted(set(seeds.values())):
        variants = {k: v for k, v in src["variants"].items() if k == base or seeds[k] == n}
        spec = {"name": FIXED, "description": f"Fixed design of equal power for adaptive_cpu: variants needing {n} seeds.",
                "base": src["base"], "variants": variants, "seeds": list(range(n)),
                "compare": src["compare"]}
        path = ROOT / f"benchmarks/specs/{FIXED}_n{n}.yaml"
        path.write_text("# Written by benchmarks/adaptive_cpu.py from the first adaptive run's differences and spread.\n"
                        + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=110))
        paths.append(path)
    return paths


def fixed_arm(store: Path, specs: list[Path], env: dict) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    parts = [timed([sys.executable, "-m", "gptlab", "run", str(p.relative_to(ROOT)), "--runs", str(store),
                    "--jobs", "1"], env) for p in specs]
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--store", default="/tmp/gptlab_adaptive_cpu")
    ap.add_argument("--out", default="benchmarks/results/adaptive_cpu.json")
    args = ap.parse_args()
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = {"what": "issue 21 CPU target: adaptive seeds (--pack seeds) vs the fixed design of equal power (--jobs 1)",
           "machine": machine(), "env": {"OMP_NUM_THREADS": env["OMP_NUM_THREADS"], "WANDB_MODE": "offline"},
           "spec": SPEC.read_text(), "measurements": []}
    specs: list[Path] = []
    for rep in range(args.repeats):
        a = adaptive_arm(Path(args.store) / f"adaptive{rep}", env)
        a.update(arm="adaptive", repeat=rep)
        out["measurements"].append(a)
        print(f"repeat {rep} adaptive: {a['n_runs']} runs, {a['wall_s']} s, {a['uptime_after']}\n{a['decision_table']}",
              flush=True)
        if rep == 0:
            out["fixed_design"] = fixed_design(Path(args.store) / "adaptive0")
            specs = write_fixed_specs(out["fixed_design"]["seeds"])
            out["fixed_specs"] = {p.name: p.read_text() for p in specs}
            print("fixed design:", json.dumps(out["fixed_design"]["seeds"]), flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
        b = fixed_arm(Path(args.store) / f"fixed{rep}", specs, env)
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
