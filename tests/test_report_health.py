"""Run health per variant from fabricated run stores: not learning (ln vocab and the data's unigram
entropy, computed here independently), unstable (a train-loss spike), overfit, diverged, ok."""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_analysis_store import write_run, write_spec

from gptlab.report.health import NOT_LEARNING_TOL, unigram_entropy
from gptlab.frames.load import load_store
from gptlab.report.build import analyze

SHAKESPEARE = Path(__file__).resolve().parents[1] / "gptlab" / "data" / "tinyshakespeare.txt"


def rewrite_metrics(run_dir: Path, train: list[float], val: dict[int, float]) -> None:
    rows = []
    for i, loss in enumerate(train):
        row = {"step": 10 * i, "train/loss": loss}
        if 10 * i in val:
            row["val/loss"] = val[10 * i]
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(best_val_loss=min(val.values()), final_val_loss=val[max(val)])
    (run_dir / "summary.json").write_text(json.dumps(summary))


def smooth(end: float, n: int = 26, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.linspace(4.2, end, n) + 0.01 * rng.standard_normal(n))


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    names = ["healthy", "stuck", "unigram", "spiky", "overfit", "broken"]
    write_spec(root, "h", {"variants": {n: {"lr": 1e-3 * (i + 1)} for i, n in enumerate(names)}, "seeds": [0, 1, 2],
                           "compare": {"metric": "val/loss", "baseline": "healthy"}})
    ends = {"healthy": 2.0, "stuck": 4.16, "unigram": 3.30, "spiky": 2.05, "overfit": 1.8, "broken": 2.0}
    for i, name in enumerate(names):
        for seed in range(3):
            status = "diverged" if name == "broken" and seed == 0 else "finished"
            run = write_run(root, "h", f"{name}-seed{seed}", best=ends[name], variant=name, seed=seed, status=status,
                            overrides={"lr": 1e-3 * (i + 1)}, steps=250)
            train = smooth(ends[name], seed=seed)
            val = {s: v for s, v in zip(range(0, 251, 50), np.linspace(4.2, ends[name], 6))}
            if name == "spiky" and seed < 2:
                train[15] += 1.0  # one spike far above the running noise
            if name == "overfit":
                val = {0: 4.2, 50: 2.2, 100: 1.8, 150: 1.9, 200: 2.1, 250: 2.2}
            rewrite_metrics(run, train, val)
    return analyze(load_store(root), "h")


def test_each_health_class(analysis) -> None:
    table = analysis.table.set_index("variant")
    assert table["health"].to_dict() == {"healthy": "ok", "stuck": "not_learning", "unigram": "not_learning",
                                         "spiky": "unstable", "overfit": "overfit", "broken": "diverged"}
    assert "ln(vocab) 4.174" in table.loc["stuck", "health_reason"]
    assert "unigram entropy 3.313" in table.loc["unigram", "health_reason"]
    assert table.loc["spiky", "health_n"] == 2 and table.loc["spiky", "health_of"] == 3


def test_findings_lead_with_health(analysis) -> None:
    from gptlab.report.findings import findings

    text = findings(analysis.table, analysis.compare)
    assert [t.split(" ")[1] for t in text[:5]] == ["stuck", "unigram", "spiky", "overfit", "broken"]
    assert text[0].startswith("Health: stuck never learned (not_learning, 3 of 3 seeds")
    assert "its comparisons say nothing about the ablation" in text[0] and text[0].endswith("(figure learning_curves).")
    assert text[1].startswith("Health: unigram learned no more than the character frequencies (not_learning")
    assert "Health: stuck, unigram did not learn; broken diverged; spiky trained unstably; overfit overfit." \
        in analysis.headline


def test_unigram_entropy_and_threshold_against_an_independent_count(tmp_path: Path) -> None:
    text = SHAKESPEARE.read_text(encoding="utf-8")
    counts = np.array(list(Counter(text).values()), dtype=float)
    assert unigram_entropy(str(SHAKESPEARE)) == pytest.approx(stats.entropy(counts), rel=1e-12)
    data = tmp_path / "ab.txt"
    data.write_text("aab" * 400)
    h = stats.entropy([2, 1])
    write_spec(tmp_path, "ab", {"variants": {"low": {"lr": 1e-3}, "high": {"lr": 2e-3}}, "seeds": [0, 1]})
    for name, lr, best in (("low", 1e-3, h - 2 * NOT_LEARNING_TOL), ("high", 2e-3, h - NOT_LEARNING_TOL / 2)):
        for seed in range(2):
            write_run(tmp_path, "ab", f"{name}-seed{seed}", best=best + 0.001 * seed, variant=name, seed=seed,
                      overrides={"lr": lr, "path": str(data)})
    table = analyze(load_store(tmp_path), "ab").table.set_index("variant")
    assert table.loc["low", "health"] == "ok" and table.loc["high", "health"] == "not_learning"
    assert f"unigram entropy {h:.3f}" in table.loc["high", "health_reason"]
    assert math.log(65) > h
