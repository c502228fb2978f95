"""A stop (Ctrl-C, Slurm's SIGTERM) that lands while a step's row is being made (here: inside its evaluation)
waits for that row and its checkpoint, so the run resumes with every row once. Before the fix, the stop was
taken at once there: the checkpoint recorded the step and its row was never written (a real Slurm requeue lost
step 500's row this way, tests/test_slurm_real.py). The signal is sent from inside the eval of a chosen step,
so it lands there every time, not by timing."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from gptlab.config import build_config
from gptlab.store import RunStore
from gptlab.train import trainer
from gptlab.train.trainer import RunMeta, run_training
from tests.test_pack import BASE


@pytest.mark.parametrize("packed", [False, True])
def test_a_stop_inside_an_eval_keeps_that_steps_row_and_resumes_with_every_row_once(tmp_path: Path, monkeypatch,
                                                                                    packed: bool):
    from gptlab.pack import loop

    cfg = build_config({**BASE, "max_steps": 40, "eval_interval": 20, "log_interval": 10, "eval_steps": 2})
    owner = loop._Pack if packed else trainer._Loop
    real, fired = owner._eval, []

    def evaluating(self):  # noqa: ANN001, ANN202
        if self.step == 20 and not fired:
            fired.append(self.step)
            os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: inside this eval
        return real(self)

    monkeypatch.setattr(owner, "_eval", evaluating)
    metas = [RunMeta("stop", f"seed{s}", overrides={"seed": s}) for s in (0, 1)]

    def train() -> None:
        if packed:
            loop.run_pack([build_config({**BASE, "max_steps": 40, "eval_interval": 20, "log_interval": 10,
                                         "eval_steps": 2, "seed": s}) for s in (0, 1)], metas, tmp_path)
        else:
            run_training(cfg, tmp_path, metas[0])

    with pytest.raises(KeyboardInterrupt):
        train()
    assert fired == [20]
    names = [m.name for m in metas[:2 if packed else 1]]
    for name in names:
        store = RunStore(tmp_path / "stop" / name)
        assert [r["step"] for r in store.metrics()] == [0, 10, 20], name  # step 20's row, with its val loss
        assert "val/loss" in store.metrics()[-1]
        assert (store.summary()["status"], store.summary()["steps"]) == ("interrupted", 20)
    train()  # resumes from step 20's checkpoint
    for name in names:
        store = RunStore(tmp_path / "stop" / name)
        assert [r["step"] for r in store.metrics()] == [0, 10, 20, 30, 40], name
        assert (store.summary()["status"], store.summary()["steps"]) == ("finished", 40)
