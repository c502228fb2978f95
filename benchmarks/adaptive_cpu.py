"""Issue 21's CPU target: an adaptive-seeds study against the fixed design of equal power.

A (adaptive): `gptlab run SPEC --pack auto` (default --jobs) into a fresh store, then `gptlab report`. The fixed
design of equal power is the one the report's "Design: adaptive seeds" section states (read from report.md):
one seed list for every variant, n the smallest at which the fixed design, analysed the same way and simulated
at A's observed differences and seed spread, reaches A's simulated power on every comparison
(gptlab.stats.sequential_sim.equal_power_fixed). That n comes from the adaptive machinery itself (its
single-look fixed design on the adaptive simulation's draws), so `equal_power_check` computes it again
independently: the fixed design's power by a plain scipy simulation of its analysis (Welch t-test and TOST, or the
paired t on per-seed differences, Holm over the comparisons) on draws of its own, and statsmodels' /
scipy's closed-form n at the adaptive design's simulated power (Bonferroni alpha). B (fixed): that design trained one seed at a time
(`gptlab run FIXED_SPEC --jobs 1`, no pack). Arms alternate A, B, A, B; the fixed design is taken from the
first A. No OMP_NUM_THREADS is set: gptlab gives each of its parallel jobs its share of the cores.

    python benchmarks/adaptive_cpu.py --repeats 2 --out benchmarks/results/adaptive_cpu_v2.json
    python benchmarks/adaptive_cpu.py --check benchmarks/results/adaptive_cpu_v2.json   # the check alone (numpy)

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

import numpy as np
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
                  r"([^.]*(?:\.\d+[^.]*)*)\. A fixed design \((?:paired, seed correlation ([-\d.]+), )?one seed list "
                  r"for every variant\) with at least that power on every comparison needs (\d+) seeds per variant, "
                  r"(\d+) runs", md)
    if not m:
        raise SystemExit("the adaptive report has no fixed-design sentence: " + md[-2000:])
    sentence = md[md.rfind("Runs trained:", 0, m.start()):md.find("\n", m.end())]
    return {"pooled_sd": float(m.group(1)), "adaptive_power": m.group(2), "n": int(m.group(4)),
            "total_runs": int(m.group(5)), "corr": None if m.group(3) is None else float(m.group(3)),
            "report_sentence": sentence}


# ---- the fixed design of equal power, computed again without the adaptive machinery -----------------------

def holm(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down rejections along the last axis (Holm 1979): sorted p_(i) against alpha / (K - i),
    rejecting up to the first that fails."""
    order = np.argsort(p, axis=-1)
    k = p.shape[-1]
    ok = np.take_along_axis(p, order, -1) <= alpha / (k - np.arange(k))
    out = np.empty_like(ok)
    np.put_along_axis(out, order, np.cumprod(ok, axis=-1).astype(bool), -1)
    return out


def fixed_power(n: int, diffs, sd: float, *, alpha: float, margin: float, corr: float | None = None,
                n_studies: int = 4000, seed: int = 12345) -> np.ndarray:
    """Per comparison, the share of simulated fixed-design studies (n seeds for the baseline and every variant,
    true `diffs`, Gaussian seed noise of sd `sd`) with the right verdict: "different" in the right direction when
    |diff| >= margin, else "equivalent". Analysis: scipy's Welch t-test and TOST (two one-sided Welch tests at the
    margin) per comparison, or with `corr` (the seeds' correlation across arms) the paired t on per-seed
    differences; each family Holm-adjusted over the comparisons; equivalent wins when both reject."""
    from scipy import stats as sps

    diffs = np.asarray(diffs, float)
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, sd, (n_studies, 1, n))
    own = rng.normal(0.0, sd, (n_studies, len(diffs), n))
    r = 0.0 if corr is None else corr
    var = diffs[None, :, None] + r * base + np.sqrt(1 - r * r) * own
    if corr is None:
        test = lambda shift, side: sps.ttest_ind(var - shift, np.broadcast_to(base, var.shape), axis=2,  # noqa: E731
                                                 equal_var=False, alternative=side).pvalue
    else:
        test = lambda shift, side: sps.ttest_1samp(var - base, shift, axis=2, alternative=side).pvalue  # noqa: E731
    p_diff = test(0.0, "two-sided")
    p_tost = np.maximum(test(-margin, "greater"), test(margin, "less"))
    different, equivalent = holm(p_diff, alpha), holm(p_tost, alpha)
    estimate = var.mean(2) - base.mean(2)
    right = np.where(np.abs(diffs) >= margin, different & ~equivalent & (np.sign(estimate) == np.sign(diffs)),
                     equivalent)
    return right.mean(0)


def closed_form_n(power, diffs, sd: float, *, alpha: float, margin: float, paired: bool = False) -> int:
    """The largest over the comparisons of the n each needs alone at Bonferroni's alpha / K: statsmodels'
    TTestIndPower (TTestPower on the differences, paired) for "different"; for "equivalent" the smallest n whose
    TOST power by the noncentral t (both one-sided tests, pooled df) reaches it. `sd`: a seed's sd, or with
    `paired` the per-seed difference's. Holm and Welch's df make the real design's n differ by a seed or so."""
    from scipy import stats as sps
    from statsmodels.stats.power import TTestIndPower, TTestPower

    a = alpha / len(diffs)
    need = []
    for target, d in zip(np.minimum(np.asarray(power, float), 0.999), np.asarray(diffs, float)):
        if abs(d) >= margin:
            solver = TTestPower() if paired else TTestIndPower()
            n = next((m for m in range(2, 1000) if solver.power(abs(d) / sd, m, a) >= target), 1000)
        else:
            def tost(m: int) -> float:
                se, df = (sd / np.sqrt(m), m - 1) if paired else (sd * np.sqrt(2 / m), 2 * m - 2)
                t = sps.t.isf(a, df)
                return sps.nct.sf(t, df, (d + margin) / se) + sps.nct.cdf(-t, df, (d - margin) / se) - 1
            n = next((m for m in range(2, 1000) if tost(m) >= target), 1000)
        need.append(n)
    return max(need)


def equal_power_check(design, diffs, sd: float, *, corr: float | None = None, n_studies: int = 2000,
                      check_studies: int = 4000, n_cap: int = 60) -> dict:
    """The fixed design of equal power as the report computes it (sequential_sim.equal_power_fixed) next to the
    same design computed independently: `independent_n`, the smallest n at which `fixed_power` (its own draws and
    tests) reaches the adaptive design's simulated power on every comparison, within one simulation standard
    error of the two simulations together; `closed_form_n`, statsmodels / scipy at that power (Bonferroni)."""
    from gptlab.stats.sequential_sim import Noise, equal_power_fixed

    paired = corr is not None
    eq = equal_power_fixed(design, diffs, sd, n_studies=n_studies, paired=paired,
                           **({"noise": Noise(corr=corr)} if paired else {}))
    target = np.asarray(eq.power, float)
    se = np.sqrt(target * (1 - target) * (1 / n_studies + 1 / check_studies))
    curve = {}
    for n in range(2, n_cap + 1):
        curve[n] = fixed_power(n, diffs, sd, alpha=design.alpha, margin=design.margin, corr=corr,
                               n_studies=check_studies)
        if np.all(curve[n] >= target - se):
            break
    ind = n if np.all(curve[n] >= target - se) else None
    sd_d = sd * np.sqrt(2 * (1 - corr)) if paired else sd
    return {"adaptive_power": target.round(4).tolist(), "report_n": eq.n, "report_fixed_power":
            np.asarray(eq.fixed_power).round(4).tolist(), "independent_n": ind,
            "independent_power": {m: p.round(4).tolist() for m, p in curve.items() if m >= n - 3},
            "closed_form_n": closed_form_n(target, diffs, sd_d, alpha=design.alpha, margin=design.margin,
                                           paired=paired),
            "adaptive_runs_expected": round(eq.adaptive_runs, 2), "n_arms": eq.n_arms}


def check_record(path: Path) -> dict:
    """equal_power_check at what a saved benchmark record's first adaptive arm decided: its differences (the
    decision table), the report's seed sd (and seed correlation, paired), its spec's design."""
    from gptlab.stats.sequential import SequentialDesign

    rec = json.loads(Path(path).read_text())
    spec = yaml.safe_load(rec["spec"])
    first = next(m for m in rec["measurements"] if m["arm"] == "adaptive")
    diffs = [float(x) for x in re.findall(r"^\S+ vs \S+ +\S+ +\d+ +\d+ +([-+][\d.]+) ", first["decision_table"], re.M)]
    fd = rec["fixed_design"]
    seeds = spec["seeds"]
    design = SequentialDesign(start=seeds["start"], max=seeds["max"], step=seeds["step"],
                              alpha=spec["compare"].get("alpha", 0.05), margin=spec["compare"]["margin"],
                              n_comparisons=len(diffs))
    used = sum(first["runs"][k] is not None for k in first["runs"])
    got = equal_power_check(design, diffs, fd["pooled_sd"], corr=fd.get("corr"))
    return {"record": str(path), "diffs": diffs, "sd": fd["pooled_sd"], "adaptive_runs": used,
            "report_n_stated": fd["n"], **got,
            "runs_ratio": {k: round(used / (got[k] * got["n_arms"]), 3) for k in
                           ("report_n", "independent_n", "closed_form_n") if got[k]}}


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
    ap.add_argument("--check", metavar="RECORD", help="only the equal-power check of a saved record (no training)")
    args = ap.parse_args()
    if args.check:
        print(json.dumps(check_record(Path(args.check)), indent=1))
        return
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
            Path(args.out).write_text(json.dumps(out, indent=1))
            out["equal_power_check"] = check_record(Path(args.out))
            print("equal-power check:", json.dumps(out["equal_power_check"]), flush=True)
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
