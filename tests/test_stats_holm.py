"""Holm's adjusted p-values (gptlab.stats.inference.holm) against statsmodels' multipletests(method="holm"), bit for
bit, and the report's `adjust` through it: ties, values that reach 1, one test, NaN left out."""
from __future__ import annotations

import gc

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from gptlab.stats.inference import adjust, holm


@pytest.mark.parametrize("seed", range(6))
def test_holm_equals_statsmodels_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    for m in (1, 2, 3, 7, 40):
        p = rng.uniform(0, 1, m) ** rng.uniform(0.5, 6)  # many small p-values, and some that adjust past 1
        if m > 3:
            p[1] = p[2]  # a tie
        want = multipletests(p, alpha=0.05, method="holm")[1]
        assert np.array_equal(holm(p), want), (seed, m)
        assert np.array_equal(adjust(p, "holm"), want)


def test_adjust_keeps_nan_out_of_the_family_and_bh_is_statsmodels():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    got = adjust(p, "holm")
    assert np.isnan(got[1])
    assert np.array_equal(got[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="holm")[1])
    assert np.array_equal(adjust(p, "bh")[[0, 2, 3]], multipletests(p[[0, 2, 3]], method="fdr_bh")[1])
    assert np.array_equal(adjust(p, "none")[[0, 2, 3]], p[[0, 2, 3]])


def test_holm_does_not_collect_garbage(monkeypatch):
    """The reason holm is not statsmodels' call: no full garbage collection per family (see its docstring)."""
    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(a) or 0)
    adjust([0.01, 0.02, 0.5], "holm")
    assert calls == []
    multipletests([0.01, 0.02, 0.5], method="holm")
    assert calls  # statsmodels' Holm still collects: when it stops, holm can go back to calling it
