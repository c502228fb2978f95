"""Files a report writes: figures are valid, HTML is self-contained, re-running is idempotent."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pytest
from test_analysis_store import make_ablation_store, write_run, write_spec

from gptlab.report.figures.base import FigureContext, label_colors, learning_curves, metric_by_variant
from gptlab.frames.load import load_store
from gptlab.report.build import analyze, write_reports


def add_grid_experiments(root: Path) -> None:
    """`lr` (one numeric key, one diverged run) and `size` (n_layer x n_embd heatmap)."""
    write_spec(root, "lr", {"description": "Learning-rate sensitivity.", "grid": {"lr": [1e-4, 1e-3, 1e-2]},
                            "seeds": [0, 1]})
    for lr, best in [(1e-4, 2.0), (1e-3, 1.5), (1e-2, 1.7)]:
        for seed in range(2):
            write_run(root, "lr", f"lr={lr:g}-seed{seed}", best=best + 0.01 * seed, seed=seed, overrides={"lr": lr})
    write_run(root, "lr", "lr=0.1-seed0", best=None, status="diverged", overrides={"lr": 0.1}, blow_up=True)
    write_spec(root, "size", {"grid": {"n_layer": [1, 2], "n_embd": [32, 64]}, "seeds": [0]})
    for n_layer in (1, 2):
        for n_embd in (32, 64):
            write_run(root, "size", f"n_layer={n_layer}-n_embd={n_embd}-seed0", best=2.0 - 0.1 * n_layer,
                      overrides={"n_layer": n_layer, "n_embd": n_embd, "n_head": 2},
                      n_params=n_layer * n_embd * 1000)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = make_ablation_store(tmp_path_factory.mktemp("store") / "runs")
    add_grid_experiments(root)
    out = root.parent / "reports"
    write_reports(root, out)
    return root, out


def test_every_experiment_reported_and_indexed(reports: tuple[Path, Path]) -> None:
    _, out = reports
    index = (out / "index.md").read_text()
    for name in ("pos", "lr", "size"):
        assert (out / name / "report.md").is_file() and (out / name / "summary.csv").is_file()
        assert f"[{name}]({name}/report.md)" in index
    assert 'href="pos/report.html"' in (out / "index.html").read_text()
    md = (out / "pos" / "report.md").read_text()
    for section in ("## Question", "## Setup", "## Results", "## Figures", "## Findings"):
        assert section in md
    assert "Does the position encoding matter?" in md and "| post_ln | 0/3 |" in md and "3 diverged" in md
    names = {p.name for p in (out / "lr" / "figures").iterdir()}
    assert {"metric_vs_key.png", "metric_vs_key.svg"} <= names and "heatmap.png" not in names
    assert "heatmap.svg" in {p.name for p in (out / "size" / "figures").iterdir()}


def test_figure_files_are_valid(reports: tuple[Path, Path]) -> None:
    _, out = reports
    files = sorted(out.glob("*/figures/*"))
    assert len(files) >= 10
    for path in files:
        data = path.read_bytes()
        assert data
        if path.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert matplotlib.image.imread(path).ndim == 3
        else:
            assert ET.fromstring(data).tag.endswith("svg")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags += 1
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "poster")]
        if tag in ("link", "script", "iframe"):
            self.refs.append(f"<{tag}>")


def test_html_is_self_contained(reports: tuple[Path, Path]) -> None:
    _, out = reports
    for name in ("pos", "lr", "size"):
        text = (out / name / "report.html").read_text()
        parser = _Refs()
        parser.feed(text)
        parser.close()
        assert parser.tags > 10 and parser.refs
        assert all(ref.startswith("data:image/") for ref in parser.refs), parser.refs
        assert "url(" not in text and "http" not in text


def test_rerun_is_idempotent(reports: tuple[Path, Path]) -> None:
    root, out = reports
    before = {p: p.read_bytes() for p in out.rglob("*") if p.suffix in (".md", ".csv", ".svg")}
    write_reports(root, out, experiments=["pos"])
    after = {p: p.read_bytes() for p in out.rglob("*") if p.suffix in (".md", ".csv", ".svg")}
    assert before == after


def test_diverged_runs_do_not_wreck_axes(tmp_path: Path) -> None:
    root = make_ablation_store(tmp_path)
    a = analyze(load_store(root), "pos")
    ctx = FigureContext("pos", a.store.runs, a.store.history, a.table, a.compare, a.design,
                        label_colors(a.design.labels))
    fig, _ = learning_curves(ctx)
    train_ax, val_ax = fig.axes[:2]
    assert val_ax.get_ylim()[1] < 5 and train_ax.get_ylim()[1] < 5  # the 1e6 / inf blow-up is off-axis
    legend = [t.get_text() for t in train_ax.get_legend().get_texts()]
    assert "diverged" in legend and "failed" in legend
    plt.close(fig)
    fig, _ = metric_by_variant(ctx)
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < 2.0 and "diverged" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
