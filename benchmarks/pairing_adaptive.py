"""Time to a decision, paired vs unpaired: issue 30's second target (benchmarks/pairing.md, part 2).

The same adaptive study (benchmarks/specs/pairing_adaptive.yaml: seeds {start 3, max 13, step 2}, margin 0.01,
two equivalences and a small real effect) is run twice with this checkout's code, each into its own fresh
store with `--pack auto`: as written (compare.pairing: auto: each look a paired t on per-seed differences)
and with compare.pairing: none (each look Welch's t on independent samples). Both arms start at the same
time, so they share whatever load the machine has; per arm: runs trained, wall seconds, CPU seconds of the
arm's process tree (os.wait4), the decision table `gptlab run` prints and `gptlab report`'s summary.csv.

    OMP_NUM_THREADS=1 python benchmarks/pairing_adaptive.py --work /tmp/gptlab_pairing_adaptive \
        --out benchmarks/results/pairing_adaptive.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "benchmarks/specs/pairing_adaptive.yaml"
ARMS = {"paired": "auto", "unpaired": "none"}


def start(arm: str, work: Path, env: dict, spec_path: Path = SPEC) -> tuple[subprocess.Popen, Path, Path]:
    spec = yaml.safe_load(spec_path.read_text())
    spec["compare"]["pairing"] = ARMS[arm]
    path = work / f"{arm}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    store = work / f"runs_{arm}"
    shutil.rmtree(store, ignore_errors=True)
    log = work / f"{arm}.log"
    cmd = [sys.executable, "-m", "gptlab", "run", str(path), "--runs", str(store), "--pack", "auto"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return proc, store, log


def runs_in(store: Path, experiment: str) -> dict[str, dict]:
    got = {}
    for s in sorted((store / experiment).glob("*/summary.json")):
        d = json.loads(s.read_text())
        got[s.parent.name] = {"status": d.get("status"), "final_val_loss": d.get("final_val_loss")}
    return got


def report(store: Path, experiment: str, env: dict) -> list[dict]:
    out = store.parent / (store.name + "_report")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "gptlab", "report", experiment, "--runs", str(store), "--out", str(out)],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return list(csv.DictReader((out / experiment / "summary.csv").open()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/gptlab_pairing_adaptive"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pairing_adaptive.json")
    ap.add_argument("--spec", type=Path, default=SPEC, help="the adaptive study (default: the max-13 budget; "
                    "benchmarks/specs/pairing_adaptive_33.yaml gives the unpaired design room to decide)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "WANDB_MODE": "disabled"}
    experiment = yaml.safe_load(args.spec.read_text())["name"]
    load, stop = [os.getloadavg()[0]], threading.Event()
    threading.Thread(target=lambda: [load.append(os.getloadavg()[0]) for _ in iter(lambda: stop.wait(30), True)],
                     daemon=True).start()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    procs = {arm: start(arm, args.work, env, args.spec) for arm in ARMS}
    arms: dict[str, dict] = {}
    pid_arm = {p.pid: arm for arm, (p, _, _) in procs.items()}
    while pid_arm:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in pid_arm:
            continue
        arm = pid_arm.pop(pid)
        arms[arm] = {"pairing": ARMS[arm], "exit_code": os.waitstatus_to_exitcode(status),
                     "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}
    stop.set()
    for arm, (_, store, log) in procs.items():
        text = log.read_text()
        runs = runs_in(store, experiment)
        arms[arm].update(runs=runs, n_runs=len(runs), decision_table=text[text.rfind("adaptive seeds"):][-3000:],
                         summary_csv=report(store, experiment, env), log_tail=text[-2000:])
    p, u = arms["paired"], arms["unpaired"]
    out = {"spec": args.spec.read_text(), "started": started, "ended": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": {"cpu": platform.processor() or "?", "cores": os.cpu_count(), "python": platform.python_version()},
           "load_1min": {"min": min(load), "max": max(load), "mean": sum(load) / len(load), "samples": len(load)},
           "runs_ratio": p["n_runs"] / u["n_runs"], "wall_ratio": p["wall_s"] / u["wall_s"],
           "cpu_ratio": p["cpu_s"] / u["cpu_s"], "arms": arms}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    for arm, a in arms.items():
        print(f"{arm}: {a['n_runs']} runs, {a['wall_s']} s wall, {a['cpu_s']} s CPU, exit {a['exit_code']}\n"
              f"{a['decision_table']}")
    print(f"runs ratio paired/unpaired {out['runs_ratio']:.2f}, wall {out['wall_ratio']:.2f}, cpu {out['cpu_ratio']:.2f}")


if __name__ == "__main__":
    main()
