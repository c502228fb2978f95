"""`compare: correction: bh`: the report adjusts all of its tests together by Benjamini-Hochberg, checked
against statsmodels' multipletests(method="fdr_bh"), and its verdicts follow the adjusted p-values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind
from test_report_stats import one_factor_store

from gptlab.stats.corrections import CORRECTIONS
from gptlab.stats.inference import CORRECTION_NAMES
from gptlab.frames.load import load_store
from gptlab.report.build import analyze
from gptlab.stats.summary import Criterion

BASE = [2.000, 2.010, 1.990, 2.005]
# planted differences from the baseline: two clear, two borderline, one null; BH keeps more than Holm
SHIFTS = {"a": 0.08, "b": 0.06, "c": 0.022, "d": 0.02, "e": 0.0}
NOISE = [0.004, -0.006, 0.007, -0.003]


def test_bh_adjusts_every_test_together_like_statsmodels(tmp_path: Path) -> None:
    groups = {"base": BASE, **{k: [b + s + n for b, n in zip(BASE, NOISE)] for k, s in SHIFTS.items()}}
    one_factor_store(tmp_path / "bh", "study", groups, margin=0.01, correction="bh")
    one_factor_store(tmp_path / "holm", "study", groups, margin=0.01)
    analysis = analyze(load_store(tmp_path / "bh"), "study")
    table = analysis.table.set_index("variant")
    others = list(SHIFTS)
    welch = [stats.ttest_ind(groups[k], BASE, equal_var=False).pvalue for k in others]
    tost = [ttost_ind(np.array(groups[k]), np.array(BASE), -0.01, 0.01, usevar="unequal")[0] for k in others]
    rejected, adjusted = multipletests(welch + tost, alpha=0.05, method="fdr_bh")[:2]
    np.testing.assert_allclose(table.loc[others, "p_adjusted"].to_numpy(float), adjusted[:5], rtol=1e-7)
    np.testing.assert_allclose(table.loc[others, "p_tost_adjusted"].to_numpy(float), adjusted[5:], rtol=1e-7)
    assert table.loc[others, "significant"].tolist() == rejected[:5].tolist()
    assert table.loc[others, "equivalent"].tolist() == rejected[5:].tolist()
    assert "adjusted together by Benjamini-Hochberg" in analysis.family.sentence()
    holm = analyze(load_store(tmp_path / "holm"), "study").table.set_index("variant")
    # the planted data tell the two corrections apart: BH finds a difference Holm does not
    assert table.loc[others, "significant"].sum() > holm.loc[others, "significant"].sum()


def test_every_correction_has_a_name_and_a_spec_reads_it() -> None:
    assert set(CORRECTION_NAMES) == set(CORRECTIONS)
    for method in CORRECTIONS:
        assert Criterion.from_spec({"compare": {"correction": method}}).correction == method
