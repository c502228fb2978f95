"""compile=true: one graph per mode. A real CPU run (inductor) with diagnostics on log steps, evals and
checkpoints must not recompile after warm-up; torch's own `recompiles` log is the counter."""
from __future__ import annotations

import logging

import pytest
import torch

from gptlab.config import build_config
from gptlab.train import RunMeta, run_training
from tests.conftest import TINY

pytest.importorskip("torch._inductor")


class _Recompiles(logging.Handler):
    """Counts the records torch emits under TORCH_LOGS=recompiles ("Recompiling function ...")."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Recompiling function" in message:
            self.messages.append(message)


@pytest.fixture
def recompiles():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    handler = _Recompiles()
    torch._logging.set_logs(recompiles=True)
    logger = logging.getLogger("torch._dynamo")  # where TORCH_LOGS=recompiles records end up
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        torch._logging.set_logs()
        torch._dynamo.reset()


def test_counter_sees_a_recompilation(recompiles):
    """The counter itself can fail: flipping grad mode under one compiled function recompiles it."""
    f = torch.compile(lambda x: x * 2, backend="eager")
    x = torch.ones(3, requires_grad=True)
    f(x)
    with torch.no_grad():
        f(x)
    assert len(recompiles.messages) == 1


@pytest.mark.slow
def test_compiled_run_with_diagnostics_never_recompiles(tmp_path, recompiles):
    from torch._dynamo.utils import counters

    # log steps with basic diagnostics (2, 4, ...), evals and checkpoints (every 4 steps)
    cfg = build_config({**TINY, "max_steps": 8, "eval_interval": 4, "log_interval": 2, "compile": True,
                        "diagnostics": "basic", "device": "cpu", "wandb": "disabled"})
    rows = []
    summary = run_training(cfg, tmp_path, RunMeta(name="compiled"), on_log=rows.append)
    assert summary["status"] == "finished", summary.get("error")
    assert any("diag/grad_norm" in r for r in rows) and sum("val/loss" in r for r in rows) == 3
    assert recompiles.messages == []
    assert counters["stats"]["unique_graphs"] <= 2  # the train graph and the eval graph, no graph breaks


@pytest.mark.slow
def test_bench_rows_compile_in_fresh_processes():
    """Each `gptlab bench` row starts from nothing: a second compiled row builds its one graph anew
    instead of finding the first row's (in one process the counter would read 2 for the second row)."""
    from gptlab.bench.measure import in_fresh_process

    cfg = build_config({**TINY, "compile": True, "device": "cpu", "log_interval": 2})
    rows = [in_fresh_process("train_step", cfg.replace(**change), "row", 3, 2)
            for change in ({}, {"diagnostics": "off"})]
    assert [r.compiled_graphs for r in rows] == [1, 1]
    assert all(r.median_ms > 0 and r.cpu_ms > 0 and r.warmup_s > 0 for r in rows)
