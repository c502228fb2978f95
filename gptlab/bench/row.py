"""One `gptlab bench` row in a fresh process: a JSON request on stdin, the Timing as one JSON line on stdout.

    {"kind": "train_step" | "eager_loop", "config": RunConfig.to_dict(), "label": ..., "steps": N, "warmup": N}
"""
from __future__ import annotations

import json
import sys

from gptlab.bench.measure import time_eager_loop, time_train_step
from gptlab.config import config_from_dict


def main() -> None:
    request = json.load(sys.stdin)
    cfg = config_from_dict(request["config"])
    if request["kind"] == "train_step":
        timing = time_train_step(cfg, request["label"], request["steps"], request["warmup"])
    elif request["kind"] == "eager_loop":
        timing = time_eager_loop(cfg, request["steps"], request["warmup"])
    else:
        raise SystemExit(f"unknown bench row kind {request['kind']!r}")
    print(json.dumps(timing.as_dict()))


if __name__ == "__main__":
    main()
