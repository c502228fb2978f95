"""The adaptive design on pairs with real tiny training (issue 30): a twin (the baseline's config under another
name: every per-seed difference is exactly 0) is decided equivalent at the first look; a far variant is decided
different; a seed whose run failed, on either side, drops its pair, is counted, and the comparison is still
decided (the next round trains the seeds still planned, the failed one is not retried); a look's paired numbers
are those of scipy's `ttest_rel` and statsmodels' `ttost_paired` on the stored values, with Hall's skewness
correction (gptlab.stats.skew) computed here by hand.

A failure is injected as tests/test_study_adaptive.py does: the stored run's summary.json says `failed`.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.study_runs import ENV, TINY, gptlab_run, summary

pytestmark = pytest.mark.slow
SPEC = {"name": "paired", "description": "adaptive seeds on pairs",
        "base": {**TINY, "max_steps": 40, "eval_interval": 20, "log_interval": 10, "lr": 1.0e-2,
                 "norm_placement": "post"},
        "variants": {"base": {}, "slow": {"lr": 1.0e-4}, "twin": {}},
        "seeds": {"start": 3, "max": 5, "step": 2}, "compare": {"baseline": "base", "margin": 0.005}}
ARGS = ("--pack", "auto")


def replayed(spec: Path, runs: Path):  # noqa: ANN202
    from gptlab.runner.spec import load_spec
    from gptlab.study.adaptive import replay_store

    return replay_store(load_spec(spec), runs, None)


def values(exp: Path, cell: str, seeds) -> np.ndarray:  # noqa: ANN001
    """The compared value (val/loss, minimized: the best) of each seed's run, read from summary.json."""
    return np.array([summary(exp / f"{cell}-seed{s}")["best_val_loss"] for s in seeds], dtype=float)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("paired")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    out = gptlab_run(spec, root / "runs", *ARGS)
    assert out.returncode == 0, out.stdout + out.stderr
    return {"spec": spec, "runs": root / "runs", "root": root}


def test_the_twin_is_equivalent_at_the_first_look_and_the_far_variant_different(study):
    state = replayed(study["spec"], study["runs"])
    assert state.complete and state.paired
    twin, slow = state.outcomes["twin"], state.outcomes["slow"]
    assert (twin.stopped, twin.round, twin.result.look, twin.result.used) == ("equivalent", 1, 0, 3.0)
    assert twin.result.diff == pytest.approx(0.0, abs=1e-6) and twin.result.p_value == pytest.approx(1.0)
    assert (slow.stopped, slow.round) == ("different", 1) and slow.result.diff > 0.3


def test_a_look_equals_scipy_ttest_rel_and_statsmodels_ttost_paired(study, tmp_path):
    from scipy import optimize, stats
    from statsmodels.stats.weightstats import ttost_paired

    exp = study["runs"] / "paired"
    state = replayed(study["spec"], study["runs"])
    a, b = values(exp, "slow", range(3)), values(exp, "base", range(3))
    r = state.outcomes["slow"].result
    assert r.diff == pytest.approx(float(np.mean(a - b)), rel=1e-6)
    # Hall's T at the skewness pooled over the open comparisons: the twin's differences (all 0) have none
    d, g = a - b, stats.skew(a - b, bias=False)

    def hall(mu: float) -> float:
        x = (d.mean() - mu) / d.std(ddof=1)
        return math.sqrt(3) * (x + g * x ** 2 / 3 + g ** 2 * x ** 3 / 27 + g / 18)

    t0 = stats.ttest_rel(a, b).statistic
    p_nominal = 2 * min(max(stats.t.sf(t0, 2), stats.t.sf(hall(0.0), 2)),
                        max(stats.t.cdf(t0, 2), stats.t.cdf(hall(0.0), 2)))
    assert r.p_value == pytest.approx(p_nominal, rel=1e-6)
    q = stats.t.isf(r.p_boundary / 2, 2)
    half = q * np.std(d, ddof=1) / math.sqrt(3)
    lo, hi = (optimize.brentq(lambda mu, c=c: hall(mu) - c, d.mean() - 100, d.mean() + 100, xtol=1e-14)
              for c in (q, -q))
    assert (r.ci_low, r.ci_high) == pytest.approx((min(d.mean() - half, lo), max(d.mean() + half, hi)), rel=1e-6)
    # "equivalent": statsmodels' paired TOST and Hall's T both reject at the look's one-sided level
    design = state.design
    p_eq = design.thresholds(r.shares)[1][0]
    q_eq = stats.t.isf(p_eq, 2)
    from gptlab.stats.sequential import SequentialDesign, decide

    for margin in (0.3, 1.0, 3.0):
        moved = SequentialDesign(design.start, design.max, design.step, margin=margin,
                                 n_comparisons=design.n_comparisons)
        said = decide(moved, a, b, paired=True, shares=r.shares, skew=g).verdict == "equivalent"
        assert said == (ttost_paired(a, b, -margin, margin)[0] < p_eq and hall(-margin) > q_eq
                        and hall(margin) < -q_eq), margin
    # the report: summary.csv says paired, its nominal p is the look's (above), its p_value the sequential one
    out = subprocess.run([sys.executable, "-m", "gptlab", "report", "paired", "--runs", str(study["runs"]),
                          "--out", str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {row["variant"]: row for row in csv.DictReader((tmp_path / "paired" / "summary.csv").open())}
    assert (rows["slow"]["pairing"], rows["slow"]["pairs"], rows["slow"]["stopped"]) == ("paired", "3", "different")
    assert float(rows["slow"]["p_nominal"]) == pytest.approx(p_nominal, rel=1e-5)
    assert float(rows["slow"]["p_value"]) == pytest.approx(r.p_sequential, rel=1e-5)
    assert float(rows["slow"]["p_adjusted"]) < 0.05 and rows["slow"]["significant"] == "True"
    assert (rows["twin"]["equivalent"], rows["twin"]["significant"], rows["twin"]["p_value"]) == ("True", "False", "1")
    md = (tmp_path / "paired" / "report.md").read_text()
    assert "**Pairing: by seed.**" in md and "An estimate at an early stop is biased" in md
    assert "Hall's (1992) skewness-corrected t" in md  # the design says what each look tests
    assert "The pooling assumes the comparisons' differences share a shape" in md  # two comparisons: pooled
    # an equivalent row names the interval that decided it (the table's column is the "different" one)
    twin_row = next(line for line in md.splitlines() if line.startswith("| twin vs base"))
    ke = state.outcomes["twin"].result.shares[1]
    assert f"its {1 - 2 * 0.05 / ke:.1%} interval [+0.0000, +0.0000] lies within ±" in twin_row, twin_row
    # its finding names the sequential decision, not a fixed-sample TOST p (not valid under the stopping)
    finding = next(line for line in md.splitlines() if line.startswith("- twin has"))
    assert "(sequential TOST: its repeated interval" in finding and "TOST, adjusted" not in finding, finding
    # the runs-saved sentence compares with the paired fixed design, at the pairs' mean correlation
    import re

    from gptlab.stats.sequential_sim import Noise, equal_power_fixed

    said = re.search(r"A fixed design \(paired, seed correlation (-?[\d.]+), .*?needs (\d+) seeds per variant", md)
    assert said, md
    corr = float(np.clip(np.nanmean([float(rows[v]["pair_corr"] or "nan") for v in ("slow", "twin")]), -0.99, 0.99))
    assert float(said.group(1)) == pytest.approx(corr, abs=0.006)
    sd = float(np.mean([(float(rows[v]["std"]) + float(rows["base"]["std"])) / 2 for v in ("slow", "twin")]))
    diffs = [state.outcomes[v].result.diff for v in ("slow", "twin")]
    eq = equal_power_fixed(state.design, diffs, sd, noise=Noise(corr=corr), paired=True)
    assert int(said.group(2)) == eq.n


@pytest.mark.parametrize("side", ["base", "slow"])
def test_a_failed_seed_on_either_side_is_dropped_and_the_comparison_still_decided(study, side, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(study["runs"], runs)
    exp = runs / "paired"
    lost = exp / f"{side}-seed1" / "summary.json"
    lost.write_text(json.dumps({**summary(exp / f"{side}-seed1"), "status": "failed", "error": "injected"}))
    state = replayed(study["spec"], runs)
    slow = state.outcomes["slow"]
    assert slow.missing == 1 and slow.result.used == 2.0  # seed 1's pair dropped and counted, not a frozen look
    if side == "base":  # the baseline's failure reaches every comparison: the twin is still decided on 2 pairs
        assert (state.outcomes["twin"].stopped, state.outcomes["twin"].result.used) == ("equivalent", 2.0)
    out = gptlab_run(study["spec"], runs, *ARGS)  # the same command finishes the study
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(lost.read_text())["status"] == "failed"  # not retried
    state = replayed(study["spec"], runs)
    slow = state.outcomes["slow"]
    assert state.complete and slow.stopped == "different", slow
    assert slow.result.used == slow.result.n - 1 and slow.missing == 1
    assert "without a value, dropped" in out.stdout


def test_the_design_paragraph_says_what_the_skew_correction_pools_and_when_it_does_not_hold():
    from gptlab.report.sections.adaptive import skew_sentence

    one, two = skew_sentence(1), skew_sentence(2)
    assert "own skewness" in one and "0.083" in one and "pooled" not in one
    assert "pooled over the comparisons" in two and "share a shape" in two and "0.083" not in two


def test_a_paired_comparison_at_the_budget_states_the_difference_its_pairs_could_detect():
    """The budget sentence of a paired study: the one-sample MDE at its pairs and the sd of its per-seed differences
    (from the two stds and the pair correlation); unpaired, the two-sample one at the pooled sd."""
    from types import SimpleNamespace

    import pandas as pd

    from gptlab.report.sections.adaptive import budget_mde
    from gptlab.stats.sequential import mde_at

    table = pd.DataFrame({"variant": ["base", "v"], "std": [0.010, 0.012], "pair_corr": [math.nan, 0.9]})
    table = table.set_index("variant")
    o = SimpleNamespace(pair=SimpleNamespace(variant="v", baseline="base"), result=SimpleNamespace(n=9, used=9.0))
    sd_d = math.sqrt(0.010 ** 2 + 0.012 ** 2 - 2 * 0.9 * 0.010 * 0.012)
    assert budget_mde(table, o, 3, True, 0.011) == \
        f"v: at 9 pairs the smallest detectable difference is {mde_at(9, sd_d, n_comparisons=3, paired=True):.3g}"
    assert budget_mde(table, o, 3, False, 0.011) == \
        f"v: at 9 seeds the smallest detectable difference is {mde_at(9, 0.011, n_comparisons=3):.3g}"
    o.result.used = 8.0  # a failed seed dropped its pair: 8 pairs
    assert budget_mde(table, o, 3, True, 0.011).startswith("v: at 8 pairs") and \
        budget_mde(table, o, 3, True, 0.011).endswith(f"{mde_at(8, sd_d, n_comparisons=3, paired=True):.3g}")
    table.loc["v", "pair_corr"] = math.nan  # no correlation (too few pairs): the unpaired figure, not "nan"
    assert budget_mde(table, o, 3, True, 0.011) == \
        f"v: at 9 seeds the smallest detectable difference is {mde_at(9, 0.011, n_comparisons=3):.3g}"
