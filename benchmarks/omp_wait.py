"""Two torch threads on a 2-core machine: OpenMP's default wait policy (spin a while, then sleep) vs
OMP_WAIT_POLICY=PASSIVE (sleep at once).

    python benchmarks/omp_wait.py --repeats 3 --steps 30 > benchmarks/results/omp_wait_idle.txt

Each setting runs in a fresh process (the policy is read when OpenMP starts), alternating, and times
--steps steps of gptlab's TrainStep on nanoGPT's CPU recipe (the default runtime of this machine) after 3
warm-up steps: process CPU ms and wall ms per step. Run it on an idle machine and on a loaded one: the
answer differs (benchmarks/cpu_speed.md).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

CHILD = """
import json, time, torch
from benchmarks.profile_cpu_step import make_step
step = make_step()
for _ in range(3): step(1e-3)
c, w = time.process_time(), time.perf_counter()
for _ in range(STEPS): step(1e-3)
print(json.dumps({"threads": torch.get_num_threads(), "cpu_ms": 1e3 * (time.process_time() - c) / STEPS,
                  "wall_ms": 1e3 * (time.perf_counter() - w) / STEPS}))
"""


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"date {datetime.now(timezone.utc).isoformat(timespec='seconds')}  load average {os.getloadavg()}")
    for repeat in range(args.repeats):
        for policy in ("default (spin)", "PASSIVE"):
            env = {**os.environ, "OMP_NUM_THREADS": "2"}
            env.pop("OMP_WAIT_POLICY", None)
            if policy == "PASSIVE":
                env["OMP_WAIT_POLICY"] = "PASSIVE"
            out = subprocess.run([sys.executable, "-c", f"STEPS = {args.steps}" + CHILD], env=env,
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"repeat {repeat} {policy:<15} threads {row['threads']}: CPU ms/step {row['cpu_ms']:.1f}, "
                  f"wall ms/step {row['wall_ms']:.1f}, load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
