"""A test-only plugin: hold a real run at a chosen step until the test says go, so that a kill, a signal or a
Slurm time limit lands exactly where the test says, whatever the machine's speed.

Loaded like any plugin (`plugins: [tests.step_barrier]` with the repository on PYTHONPATH; see
gptlab/plugins.py); it does nothing unless the environment of the process names a barrier:

    STEP_BARRIER=<dir>|<step k>|<run name or empty>

Then, when the process that trains that run (any run, if the name is empty) is about to take step k + 1 (k
steps done: their metric rows, and the checkpoint of an eval step, written), the plugin creates
`<dir>/at-step-k` holding the run's name and the process id, and waits until `<dir>/release` exists. Once
released it never holds again, so a resumed attempt passes step k. A stop signal that arrives while it waits
stops the run there (the trainer's handler: not inside a step, so at once, with a checkpoint at step k).

It wraps two functions where the training loops call them: `lr_at(step, cfg)`, called once per step before
the step (unpacked: gptlab.train.trainer; packed: gptlab.pack.loop, once per member), which gives the step;
and `log_start(store, start, step)`, called for each run a process begins (all members of a pack, before its
loop), which gives the runs this process trains now. A loop that stops calling either by these names leaves
every barrier test hanging until its timeout, with a message naming this module.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "STEP_BARRIER"
POLL_S = 0.01  # how often a held run looks for the release file (the test, not training, is waited for)


def barrier_env(directory: Path, step: int, run: str | None = None) -> dict[str, str]:
    """The environment entry that arms the barrier for a gptlab process (and every process it starts)."""
    return {ENV: f"{directory}|{step}|{run or ''}"}


def _install(spec: str) -> None:
    directory, step_text, run = spec.split("|")
    directory, step = Path(directory), int(step_text)
    current: list[str] = []  # the runs this process began since it last took a step: the ones it trains now
    state = {"collecting": False, "done": False}

    def held(at: int) -> None:
        state["collecting"] = False
        if state["done"] or at != step or (run and run not in current):
            return
        state["done"] = True
        if (directory / "release").exists():
            return
        note = directory / f".at-step-{step}.{os.getpid()}"
        note.write_text(f"{','.join(current)} {os.getpid()}\n")
        note.replace(directory / f"at-step-{step}")  # atomic: the test never reads half a note
        while not (directory / "release").exists():
            time.sleep(POLL_S)

    import gptlab.pack.loop as pack_loop
    import gptlab.train.trainer as trainer

    for module in (trainer, pack_loop):
        for name in ("lr_at", "log_start"):
            if not hasattr(module, name):
                raise RuntimeError(f"tests.step_barrier: {module.__name__} no longer calls {name}; update the plugin")
        lr_at, log_start = module.lr_at, module.log_start

        def barrier_lr_at(at, cfg, _lr_at=lr_at):  # noqa: ANN001
            held(at)
            return _lr_at(at, cfg)

        def barrier_log_start(store, start, at, _log_start=log_start):  # noqa: ANN001
            if not state["collecting"]:
                current.clear()
                state["collecting"] = True
            current.append(Path(store.dir).name)
            return _log_start(store, start, at)

        module.lr_at, module.log_start = barrier_lr_at, barrier_log_start


if os.environ.get(ENV):
    _install(os.environ[ENV])
