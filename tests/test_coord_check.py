"""`gptlab diagnose coord-check`: μP's coordinate check (Tensor Programs V) on a tiny model. Under mup the
logits' scale is flat in width after a few steps; under standard it grows. The slopes are fitted here
with numpy.polyfit on the CSV the command wrote, independently of the command's own summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gptlab.diagnostics.coord_check import read_csv
from tests.conftest import assert_user_error, cli

WIDTHS = (32, 64, 128, 256)
TINY = ["n_layer=2", "n_embd=32", "n_head=2", "block_size=32", "batch_size=8", "dropout=0", "lr=1e-2"]


def slope(rows: list[dict], layer: str, step: int) -> float:
    pts = sorted((r["width"], r["scale"]) for r in rows if r["layer"] == layer and r["step"] == step)
    assert [w for w, _ in pts] == list(WIDTHS)
    return float(np.polyfit(np.log([w for w, _ in pts]), np.log([s for _, s in pts]), 1)[0])


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict[str, list[dict]]:
    out = {}
    for param in ("standard", "mup"):
        folder = tmp_path_factory.mktemp(param)
        extra = ["parametrization=mup", "mup_base_width=32"] if param == "mup" else []
        res = cli("diagnose", "coord-check", *TINY, *extra, "--widths", ",".join(map(str, WIDTHS)),
                  "--steps", "4", "--out", str(folder), cwd=folder)
        assert res.returncode == 0, res.stderr
        assert (folder / "coord_check.png").stat().st_size > 10_000
        out[param] = read_csv(folder / "coord_check.csv")
    return out


def test_logits_are_flat_in_width_under_mup_and_grow_under_standard(checks):
    for step in (3, 4):
        standard, mup = slope(checks["standard"], "logits", step), slope(checks["mup"], "logits", step)
        assert standard > 0.4, standard
        assert abs(mup) < 0.15, mup
    # the hidden blocks too: under μP every layer's scale stays in a narrow band across the 8x width range,
    # under standard every block's output grows faster than the width's square root
    layers = {r["layer"] for r in checks["mup"]}
    assert {"embedding", "block.0.attn", "block.0.mlp", "block.1", "logits"} <= layers
    worst = max(abs(slope(checks["mup"], layer, 4)) for layer in layers)
    assert worst < 0.35, worst
    blocks = [layer for layer in layers if layer.startswith("block.")]
    assert min(slope(checks["standard"], layer, 4) for layer in blocks) > 1.0


def test_at_init_mup_keeps_every_hidden_scale_flat_and_shrinks_the_logits(checks):
    """Before any step: μP's init (std * sqrt(base / width)) makes the blocks' outputs width-free where the
    fixed std 0.02 of standard makes them grow; μP's output multiplier base / width shrinks the logits."""
    blocks = [layer for layer in {r["layer"] for r in checks["mup"]} if layer.startswith("block.")]
    assert max(abs(slope(checks["mup"], layer, 0)) for layer in blocks) < 0.1
    assert max(slope(checks["standard"], layer, 0) for layer in blocks) > 0.3
    assert slope(checks["mup"], "logits", 0) < -0.3 < 0.3 < slope(checks["standard"], "logits", 0)


def test_the_csv_has_every_width_step_and_layer(checks):
    rows = checks["standard"]
    assert {(r["width"], r["n_head"]) for r in rows} == {(w, w // 16) for w in WIDTHS}  # head size 16 kept
    assert {r["step"] for r in rows} == {0, 1, 2, 3, 4}
    per = {(r["width"], r["step"]) for r in rows}
    assert len(rows) == len(per) * 8  # embedding, 2 x (attn, mlp, block), logits


def test_a_width_that_cannot_be_built_exits_2(tmp_path: Path):
    res = cli("diagnose", "coord-check", *TINY, "--widths", "32,40", "--steps", "1", "--out", str(tmp_path),
              cwd=tmp_path)
    assert_user_error(res, "width 40 cannot be built", "16")
    assert not (tmp_path / "coord_check.csv").exists()
    assert_user_error(cli("diagnose", "coord-check", *TINY, "--widths", "32", cwd=tmp_path), "--widths")
