"""Does every modern axis (issue 31) train packed as fast per run as the axes already there?

For the baseline config and each new axis value (one change at a time), `gptlab.pack.bench.pack_study` runs the
same seed study sequentially (`--jobs 1`), as processes (`--jobs 2`) and packed (`--pack seeds`, `--pack seeds
--jobs 2`), every arm a real `gptlab run`; the figure per axis is the packing speed-up (sequential wall / packed
wall), to be compared with the baseline's measured in the same run. `optimizer: muon` trains unpacked (the
planner says why), so its 'packed' arms are unpacked runs: its ratio shows what the fallback costs.

    OMP_NUM_THREADS=1 python benchmarks/pack_axes.py --seeds 4 --repeats 1 --out benchmarks/results/pack_axes.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from gptlab.pack.bench import pack_study

BASE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 16, "max_steps": 150,
        "dropout": 0.0, "wandb": "disabled", "dtype": "float32", "eval_interval": 50, "eval_steps": 8}
AXES = {"baseline": {}, "qk_norm": {"qk_norm": True}, "relu2": {"activation": "relu2"},
        "logit_softcap": {"logit_softcap": 30.0}, "z_loss": {"z_loss": 1e-4}, "zero_proj": {"init": "zero_proj"},
        "mup": {"parametrization": "mup", "mup_base_width": 32}, "muon": {"optimizer": "muon"}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    results = {}
    for name, change in AXES.items():
        if args.only and name not in args.only:
            continue
        started = time.time()
        report = pack_study({**BASE, **change}, seeds=args.seeds, repeats=args.repeats)
        med = report["median_wall_s"]
        results[name] = {"change": change, "median_wall_s": med,
                         "packing_speedup": med["sequential"] / med["packed"],
                         "load_before_after": [os.getloadavg()[0]], "bench_s": round(time.time() - started, 1)}
        print(name, {k: round(v, 1) for k, v in med.items()}, f"speed-up {results[name]['packing_speedup']:.2f}x",
              flush=True)
    base = results.get("baseline", {}).get("packing_speedup")
    for r in results.values():
        r["speedup_vs_baseline"] = r["packing_speedup"] / base if base else None
    machine = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg": os.getloadavg()}
    args.out.write_text(json.dumps({"machine": machine, "base": BASE, "seeds": args.seeds,
                                    "repeats": args.repeats, "results": results}, indent=1))


if __name__ == "__main__":
    main()
