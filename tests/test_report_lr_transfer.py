"""The lr-transfer figure (Tensor Programs V, figure 1) on a store written by real tiny training runs: a grid
over lr x n_embd under two parametrizations. Each panel's lines are the means over seeds that the stored
runs' summary.json give, width by width; the ring marks each width's best lr; a grid without a width key
draws no such figure."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from gptlab.config import build_config
from gptlab.dataset import default_data_path
from gptlab.frames.load import load_store
from gptlab.report.build import analyze
from gptlab.report.figures.base import FIGURES, FigureContext, label_colors
from gptlab.report.figures.transfer import FIG_LR_TRANSFER, lr_transfer
from gptlab.train import RunMeta, run_training

TINY = {"n_layer": 1, "n_head": 2, "block_size": 16, "batch_size": 4, "max_steps": 10, "eval_interval": 5,
        "eval_steps": 2, "log_interval": 5, "dropout": 0.0, "warmup_steps": 2, "wandb": "disabled",
        "diagnostics": "off", "dtype": "float32"}
LRS, WIDTHS, SEEDS = [1.0e-3, 1.0e-2], [16, 32], [0, 1]
VARIANTS = {"standard": {"parametrization": "standard"}, "mup": {"parametrization": "mup", "mup_base_width": 16}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data") / "small.txt"
    data.write_text(default_data_path().read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    root = tmp_path_factory.mktemp("transfer") / "runs"
    spec = {"name": "tr", "variants": VARIANTS, "grid": {"lr": LRS, "n_embd": WIDTHS}, "seeds": SEEDS,
            "compare": {"metric": "val/loss", "goal": "minimize"}}
    (root / "tr").mkdir(parents=True)
    (root / "tr" / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for variant, changes in VARIANTS.items():
        for lr in LRS:
            for width in WIDTHS:
                for seed in SEEDS:
                    over = {**changes, "lr": lr, "n_embd": width, "seed": seed}
                    name = f"{variant}-lr={lr:g}-n_embd={width}-seed{seed}"
                    cfg = build_config({**TINY, "path": str(data), **over})
                    assert run_training(cfg, root, RunMeta("tr", name, variant, over))["status"] == "finished"
    return root


def stored_means(root: Path) -> dict[str, dict[int, list[tuple[float, float]]]]:
    """variant -> width -> [(lr, mean best_val_loss over seeds)], read from each run's own files."""
    got: dict = defaultdict(lambda: defaultdict(list))
    for run in sorted((root / "tr").iterdir()):
        if not run.is_dir():
            continue
        config = yaml.safe_load((run / "config.yaml").read_text())
        summary = json.loads((run / "summary.json").read_text())
        got[run.name.split("-")[0]][(config["model"]["n_embd"], config["train"]["lr"])].append(
            summary["best_val_loss"])
    out: dict = {}
    for variant, cells in got.items():
        for (width, lr), losses in sorted(cells.items()):
            assert len(losses) == len(SEEDS)
            out.setdefault(variant, {}).setdefault(width, []).append((lr, float(np.mean(losses))))
    return out


def test_each_panels_lines_are_the_stored_means_per_width(store):
    a = analyze(load_store(store), "tr")
    ctx = FigureContext(a.experiment, a.store.runs, a.store.history, a.table, a.compare, a.design,
                        label_colors(a.design.labels))
    assert FIG_LR_TRANSFER in [name for name, _ in FIGURES]
    fig, caption = lr_transfer(ctx)
    expected = stored_means(store)
    assert len(fig.axes) == 2
    for ax, variant in zip(fig.axes, ("standard", "mup")):
        assert ax.get_title() == f"{variant} (parametrization {variant})"
        lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
        assert sorted(lines) == sorted(f"n_embd={w}" for w in WIDTHS)
        for width in WIDTHS:
            np.testing.assert_allclose(lines[f"n_embd={width}"], np.array(expected[variant][width]), rtol=1e-6)
            best_lr = min(expected[variant][width], key=lambda p: p[1])[0]
            assert f"{variant} {width}: {best_lr:g}" in caption
        rings = {(round(float(x), 6), round(float(y), 6)) for c in ax.collections for x, y in c.get_offsets()}
        assert rings == {tuple(round(v, 6) for v in min(expected[variant][w], key=lambda p: p[1])) for w in WIDTHS}
        assert ax.get_xscale() == "log"
    plt.close(fig)


def test_no_width_key_no_figure(store):
    a = analyze(load_store(store), "tr")
    design = a.design.__class__(a.design.labels, ["lr"], a.design.varying, a.design.shared, a.design.label_config)
    ctx = FigureContext(a.experiment, a.store.runs, a.store.history, a.table, a.compare, design,
                        label_colors(a.design.labels))
    assert lr_transfer(ctx) is None
