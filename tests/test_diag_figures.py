"""Report figures and findings from diagnostics, on a store written by real tiny training runs."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

import gptlab.report.figures.diagnostics as diag_figures
from gptlab.report.figures.base import FIGURES, FigureContext, label_colors, make_figures
from gptlab.frames.load import load_store
from gptlab.report.build import analyze
from gptlab.config import build_config
from gptlab.dataset import default_data_path
from gptlab.diagnostics.length import length_eval
from gptlab.train import RunMeta, run_training

TINY = {"n_embd": 32, "n_head": 2, "block_size": 16, "batch_size": 4, "max_steps": 10, "eval_interval": 10,
        "eval_steps": 2, "log_interval": 5, "dropout": 0.0, "warmup_steps": 5, "wandb": "disabled"}
VARIANTS = {"residual": {"res_none_4": {"residual": True, "norm": "none", "n_layer": 4},
                         "nores_none_4": {"residual": False, "norm": "none", "n_layer": 4}},
            "scaling": {"scaled": {"attn_scale": "scaled", "n_layer": 1},
                        "unscaled": {"attn_scale": "unscaled", "n_layer": 1}},
            "positions": {"alibi": {"pos_encoding": "alibi", "n_layer": 1},
                          "rope": {"pos_encoding": "rope", "n_layer": 1}}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """TINY on the first 40k characters of the shipped text: tokenizing 1 MB per run is slow."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(default_data_path().read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    return {**TINY, "path": str(path)}


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny) -> Path:
    root = tmp_path_factory.mktemp("diagstore") / "runs"
    for experiment, variants in VARIANTS.items():
        spec = {"name": experiment, "variants": variants, "seeds": [0],
                "compare": {"metric": "val/loss", "goal": "minimize", "baseline": next(iter(variants))}}
        (root / experiment).mkdir(parents=True)
        (root / experiment / "spec.yaml").write_text(yaml.safe_dump(spec))
        for variant, changes in variants.items():
            cfg = build_config({**tiny, **changes})
            summary = run_training(cfg, root, RunMeta(experiment, f"{variant}-seed0", variant, changes))
            assert summary["status"] == "finished"
            if experiment == "positions":
                length_eval(root / experiment / f"{variant}-seed0", [32], "cpu")
    return root


def context(root: Path, experiment: str) -> FigureContext:
    a = analyze(load_store(root), experiment)
    return FigureContext(a.experiment, a.store.runs, a.store.history, a.table, a.compare, a.design,
                         label_colors(a.design.labels), {"runs_root": root})


def test_figures_are_registered():
    names = [name for name, _ in FIGURES]
    for name in ("grad_norm_by_layer", "attention_stats", "early_training", "length_generalisation"):
        assert name in names


def test_residual_experiment_gets_grad_norm_figures_and_a_finding(store, tmp_path):
    ctx = context(store, "residual")
    assert "diag/grad_norm/embedding" in ctx.history and "diag/grad_norm/block_3" in ctx.history
    made = {f.name for f in make_figures(ctx, tmp_path)}
    assert "grad_norm_by_layer" in made  # residual / norm / depth vary
    assert not made & {"attention_stats", "early_training", "length_generalisation"}
    assert (tmp_path / "grad_norm_by_layer.png").stat().st_size > 1000
    lines = diag_figures.diag_findings(ctx)
    embedding = [line for line in lines if "embedding in nores_none_4" in line]
    assert embedding and "grad_norm_by_layer" in embedding[0]


def test_scaling_experiment_gets_attention_figure_and_finding(store, tmp_path):
    ctx = context(store, "scaling")
    made = {f.name for f in make_figures(ctx, tmp_path)}
    assert "attention_stats" in made and "grad_norm_by_layer" not in made
    lines = [line for line in diag_figures.diag_findings(ctx) if "attention logits" in line]
    assert lines and lines[0].startswith("unscaled has attention logits")
    ratio = float(lines[0].split("logits ")[1].split("x")[0])
    assert 2 < ratio < 8  # head size 16: sqrt(16) = 4 at init


def test_positions_experiment_gets_length_figure(store, tmp_path):
    ctx = context(store, "positions")
    made = {f.name for f in make_figures(ctx, tmp_path)}
    assert "length_generalisation" in made
    lines = [line for line in diag_figures.diag_findings(ctx) if "length_generalisation" in line]
    assert len(lines) == 2 and "trained context 16" in lines[0] and "at 32" in lines[0]
    ctx.options.pop("runs_root")
    assert diag_figures.length_generalisation(ctx) is None  # no run store root: left out


def test_warmup_experiment_gets_early_training_figure(store, tiny, tmp_path):
    root = store.parent / "warmup_runs"
    for variant, warmup in (("warmup", 5), ("no_warmup", 0)):
        cfg = build_config({**tiny, "n_layer": 1, "warmup_steps": warmup})
        run_training(cfg, root, RunMeta("warmup", f"{variant}-seed0", variant, {"warmup_steps": warmup}))
    ctx = context(root, "warmup")
    made = {f.name for f in make_figures(ctx, tmp_path)}
    assert "early_training" in made
    assert any("Peak pre-clip gradient norm" in line for line in diag_figures.diag_findings(ctx))


@pytest.mark.parametrize("experiment, figure", [("residual", "grad_norm_by_layer"), ("scaling", "attention_stats")])
def test_figure_that_applies_without_data_is_left_out_with_a_reason(store, tmp_path, experiment, figure):
    """Runs with diagnostics off: the figure is not drawn (never empty), and one finding says why."""
    ctx = context(store, experiment)
    ctx.history = ctx.history[[c for c in ctx.history.columns if not c.startswith("diag/")]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No artists with labels found" on an empty legend
        made = {f.name for f in make_figures(ctx, tmp_path)}
    assert figure not in made and not (tmp_path / f"{figure}.png").exists()
    assert "log.diagnostics was off" in ctx.skipped[figure]
    reasons = [line for line in diag_figures.diag_findings(ctx) if figure in line]
    assert reasons == [f"Figure {figure} is left out: {ctx.skipped[figure]}."]
