"""How well seed s of a variant pairs with seed s of the baseline: issue 30's table (benchmarks/pairing.md).

For every built-in axis, each non-default value is a variant of one small CPU recipe; every variant and the
baseline train the same seeds (`gptlab run SPEC --pack seeds`, float32, dropout 0) in up to three arms:
  keyed   this checkout's code: each parameter from its own stream keyed by (init seed, parameter name)
          (gptlab/model/init.py, 0.4.0);
  before  the same spec trained by another checkout's code (`--before-worktree PATH`, run with
          PYTHONPATH=PATH; a checkout of 06f51c0 = 0.3.1 is the honest 'before': torch.manual_seed(seed),
          then every weight drawn from the one global stream in module order). Variants that checkout does
          not declare (axes or values added later) are left out of that arm;
  shared  this checkout with GPTLAB_INIT_STREAMS=shared (one global stream in module order, not 0.3.1's
          init bit for bit: kept for the record of the first run).
Per variant and arm: the correlation across seeds of final val loss with the baseline's (with its Fisher z
95% interval), the seeds factor (sd_a^2 + sd_b^2) / sd_diff^2 (how many times more seeds an unpaired
comparison needs than a paired one for the same precision) and the mean paired difference; per variant,
keyed minus before with the interval of a difference of two independent Fisher z's.

    git worktree add /path/to/base 06f51c0
    OMP_NUM_THREADS=1 python benchmarks/pairing_cpu.py --steps 250 --before-worktree /path/to/base \
        --work /tmp/gptlab_pairing --out benchmarks/results/pairing_cpu.json

The arms train at the same time (each `--jobs` packs at once); --steps / --seeds / --variants shrink it (the
record in pairing.md says what was used). A run already finished in a work store is not trained again.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gptlab.axes import AXES, Axis, check_combination  # noqa: E402

BASE = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64, "batch_size": 16, "dropout": 0.0,
        "max_steps": 400, "warmup_steps": 40, "lr": 2.0e-3, "min_lr": 2.0e-4, "eval_interval": 400,
        "eval_steps": 10, "log_interval": 100, "wandb": "disabled", "diagnostics": "off", "dtype": "float32"}
Z95 = 1.959964
FIRST = ("pos_encoding=rope", "tie_weights=false")  # the targets: trained first, so a cut-short run has them


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
    return {k: out[k] for k in sorted(out, key=lambda k: (k != "base", k not in FIRST))}


def declared_by(worktree: Path) -> set[str]:
    """'axis=value' for every built-in value the checkout at `worktree` declares (its own gptlab.axes)."""
    code = ("import json; from gptlab.axes import AXES, Axis; print(json.dumps([f'{n}={Axis.spell(v)}' "
            "for n, a in AXES.items() for v in a.values(lambda origin: False)]))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(worktree)},
                         cwd=worktree, check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def spec(name: str, seeds: list[int], steps: int, chosen: dict[str, dict], evals: int = 1) -> dict:
    """The study of one arm; `evals`: evaluations over the run (1: at the end only, as part 1)."""
    base = {**BASE, "max_steps": steps, "eval_interval": steps // evals, "warmup_steps": steps // 10}
    return {"name": name, "description": "issue 30: pairing of seeds across variants",
            "base": base, "variants": {k.replace("=", "_"): v for k, v in chosen.items()}, "seeds": seeds}


def start(arm: str, chosen: dict[str, dict], args: argparse.Namespace) -> tuple[subprocess.Popen, Path]:
    """Start training (or finishing) every chosen variant of one arm; returns the process and run folder."""
    name = f"pairing_{arm}"
    spec_path = args.work / f"{name}.yaml"
    body = spec(name, list(range(args.seeds)), args.steps, chosen, getattr(args, "evals", 1))
    spec_path.write_text(yaml.safe_dump(body, sort_keys=False))
    store = args.work / f"runs_{arm}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    env["PYTHONPATH"], cwd = str(ROOT), ROOT  # this checkout's gptlab, not whatever is installed
    if arm == "shared":
        env["GPTLAB_INIT_STREAMS"] = "shared"
    if arm == "before":
        env["PYTHONPATH"], cwd = str(args.before_worktree), args.before_worktree
    cmd = [sys.executable, "-m", "gptlab", "run", str(spec_path), "--runs", str(store), "--pack", "seeds",
           "--jobs", str(args.jobs)]
    log = open(args.work / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT), store / name


def finals(run_dir: Path) -> tuple[dict[str, dict[int, float]], str]:
    """variant -> seed -> final val loss, from the run store (config.yaml's run section, summary.json),
    and the gptlab version that trained them."""
    out: dict[str, dict[int, float]] = {}
    versions = set()
    for summary in sorted(run_dir.glob("*/summary.json")):
        s = json.loads(summary.read_text())
        cfg = yaml.safe_load((summary.parent / "config.yaml").read_text())
        if s.get("status") == "finished":
            out.setdefault(cfg["run"]["variant"], {})[int(cfg["run"]["seed"])] = s["final_val_loss"]
            versions.add(cfg.get("provenance", {}).get("gptlab_version", "?"))
    return out, ",".join(sorted(versions))


def fisher_interval(r: float, n: int) -> list[float]:
    """95% interval of a correlation from n pairs: tanh(atanh(r) -+ 1.96 / sqrt(n - 3)) (Fisher 1921)."""
    if not -1 < r < 1 or n <= 3:
        return [float("nan"), float("nan")]
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    return [math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)]


def pairing(base: dict[int, float], other: dict[int, float]) -> dict:
    seeds = sorted(set(base) & set(other))
    a, b = [other[s] for s in seeds], [base[s] for s in seeds]
    diff = [x - y for x, y in zip(a, b)]
    sd_a, sd_b, sd_d = statistics.stdev(a), statistics.stdev(b), statistics.stdev(diff)
    corr = statistics.correlation(a, b) if sd_a > 0 and sd_b > 0 else float("nan")
    return {"pairs": len(seeds), "corr": corr, "corr_95": fisher_interval(corr, len(seeds)),
            "seeds_factor": (sd_a ** 2 + sd_b ** 2) / sd_d ** 2 if sd_d > 0 else float("inf"),
            "diff": statistics.fmean(diff), "sd_variant": sd_a, "sd_base": sd_b, "sd_diff": sd_d}


def change(keyed: dict, before: dict) -> dict:
    """keyed corr minus before corr, with the 95% interval of z_keyed - z_before (independent arms: the
    two arms share data order but no run, so this treats them as independent samples of 8 seeds)."""
    dz = math.atanh(keyed["corr"]) - math.atanh(before["corr"])
    se = math.sqrt(1 / (keyed["pairs"] - 3) + 1 / (before["pairs"] - 3))
    return {"corr_change": keyed["corr"] - before["corr"], "z_change": dz,
            "z_change_95": [dz - Z95 * se, dz + Z95 * se], "p_one_sided": 0.5 * math.erfc(dz / se / math.sqrt(2))}


def table(results: dict) -> str:
    rows = ["| variant vs baseline | corr, name-keyed [95%] | corr, 0.3.1 [95%] | change [z 95%] | "
            "seeds factor, name-keyed | seeds factor, 0.3.1 | diff (nats), name-keyed |", "|---|---|---|---|---|---|---|"]
    for v, r in results["variants"].items():
        k, b, c = r.get("keyed"), r.get("before"), r.get("change")
        cell = lambda x: f"{x['corr']:.2f} [{x['corr_95'][0]:.2f}, {x['corr_95'][1]:.2f}]" if x else "n/a"  # noqa: E731
        ch = f"{c['corr_change']:+.2f} [{c['z_change_95'][0]:+.2f}, {c['z_change_95'][1]:+.2f}]" if c else "n/a"
        rows.append(f"| {v} | {cell(k)} | {cell(b)} | {ch} | {k['seeds_factor']:.1f}x | "
                    f"{b['seeds_factor']:.1f}x | {k['diff']:+.4f} |" if b else
                    f"| {v} | {cell(k)} | n/a | n/a | {k['seeds_factor']:.1f}x | n/a | {k['diff']:+.4f} |")
    return "\n".join(rows)


def sample_load(stop: threading.Event, into: list) -> None:
    while not stop.wait(30):
        into.append(os.getloadavg()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=2, help="packs at once, per arm")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gptlab_pairing"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pairing_cpu.json")
    ap.add_argument("--variants", help="comma-separated subset, e.g. pos_encoding=rope,tie_weights=false")
    ap.add_argument("--before-worktree", type=Path, help="a checkout of the 'before' code (06f51c0 = 0.3.1)")
    ap.add_argument("--arms", default=None, help="comma-separated from keyed,before,shared "
                    "(default: keyed, and before when --before-worktree is given)")
    ap.add_argument("--fresh", action="store_true", help="discard the work folder's stores first")
    args = ap.parse_args()
    arms = args.arms.split(",") if args.arms else ["keyed"] + (["before"] if args.before_worktree else [])
    if "before" in arms and not args.before_worktree:
        ap.error("--arms before needs --before-worktree PATH")
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    only = args.variants.split(",") if args.variants else None
    chosen = {k: v for k, v in variants().items() if only is None or k in only or k == "base"}
    per_arm = {arm: chosen for arm in arms}
    if "before" in arms:
        known = declared_by(args.before_worktree)
        per_arm["before"] = {k: v for k, v in chosen.items() if k == "base" or k in known}
    load, stop = [os.getloadavg()[0]], threading.Event()
    threading.Thread(target=sample_load, args=(stop, load), daemon=True).start()
    t0, started = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    procs = {arm: start(arm, per_arm[arm], args) for arm in arms}
    got, wall, version = {}, {}, {}
    for arm, (proc, run_dir) in procs.items():
        if proc.wait() != 0:
            sys.exit(f"arm {arm} failed: see {args.work / f'pairing_{arm}.log'}")
        wall[arm] = time.perf_counter() - t0  # the arms run at the same time: ends, not durations
        got[arm], version[arm] = finals(run_dir)
    stop.set()
    load.append(os.getloadavg()[0])
    results = {"recipe": {**spec("", [], args.steps, {})["base"]}, "seeds": list(range(args.seeds)),
               "arms": {arm: {"gptlab_version": version[arm], "wall_s_to_end": wall[arm],
                              "variants": len(per_arm[arm]) - 1} for arm in arms},
               "command": " ".join([Path(sys.executable).name, *sys.argv]),
               "machine": {"cpu": _cpu(), "flags_avx512_bf16": _flag("avx512_bf16"), "python": platform.python_version(),
                           "cores": os.cpu_count()},
               "started": started, "ended": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_1min": {"min": min(load), "mean": statistics.fmean(load), "max": max(load), "samples": len(load)},
               "variants": {}}
    for label in chosen:
        if label == "base":
            continue
        key = label.replace("=", "_")
        row = {arm: pairing(got[arm]["base"], got[arm][key]) for arm in arms if key in got[arm]}
        if "keyed" in row and "before" in row:
            row["change"] = change(row["keyed"], row["before"])
        results["variants"][label] = row
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


def _flag(name: str) -> bool:
    try:
        return f" {name}" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


if __name__ == "__main__":
    main()
