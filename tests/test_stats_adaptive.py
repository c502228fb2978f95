"""gptlab.stats.adaptive.replay as the planner and the report use it, on values made up in the test (no training):
what it plans next (seeds per cell, the round, whether the study is complete, each round's seeds), the budget
verdict, the information history it passes to each look (a look that tested nothing spends nothing), the metric's
sign, the failed-seed count of each pairing, and the p a comparison that stopped equivalent reports."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gptlab.stats.adaptive import Pair, replay, reported_p
from gptlab.stats.sequential import SequentialDesign

DESIGN = SequentialDesign(start=3, max=9, step=2, alpha=0.05, margin=0.02, n_comparisons=2)
RNG = np.random.default_rng(3)
BASE = RNG.normal(3.0, 0.01, 9)
VALUES = {"base": BASE, "twin": BASE.copy(), "far": BASE + 0.006 + RNG.normal(0, 0.01, 9)}  # far: open for a while
PAIRS = [Pair("twin", "base"), Pair("far", "base")]


def _run(available: dict[str, int], values=VALUES, pairs=PAIRS, design=DESIGN, **kw):  # noqa: ANN001, ANN202
    return replay(design, pairs, lambda c, s: s < available[c], lambda c, s: float(values[c][s]), **kw)


def test_the_replay_plans_each_round_from_what_the_store_holds():
    state = _run({"base": 0, "twin": 0, "far": 0}, paired=True)
    assert (state.round, state.complete, state.seeds) == (1, False, {"twin": 3, "base": 3, "far": 3})
    assert state.design is DESIGN and state.paired
    assert state.rounds == [{"twin": 3, "base": 3, "far": 3}] and state.open() == ["twin", "far"]
    state = _run({"base": 3, "twin": 3, "far": 2}, paired=True)  # far's third seed still training
    assert (state.round, state.complete) == (1, False)
    state = _run({"base": 3, "twin": 3, "far": 3}, paired=True)  # the twin stops; far and base train on
    assert state.outcomes["twin"].stopped == "equivalent" and state.outcomes["far"].stopped is None
    assert (state.round, state.complete, state.seeds) == (2, False, {"twin": 3, "base": 5, "far": 5})
    assert state.rounds == [{"twin": 3, "base": 3, "far": 3}, {"twin": 3, "base": 5, "far": 5}]
    assert state.open() == ["far"] and state.paired


def test_a_comparison_open_at_the_last_look_stops_at_the_budget_and_the_study_is_complete():
    wide = np.array([0.03, -0.01, 0.025, -0.005, 0.02, -0.01, 0.03, 0.0, 0.015])  # differences no look decides
    flat = {"base": BASE, "twin": BASE.copy(), "far": BASE + wide}
    state = _run({"base": 9, "twin": 9, "far": 9}, values=flat, paired=True)
    assert state.outcomes["far"].stopped == "budget" and state.outcomes["far"].result.final
    assert (state.round, state.complete, state.paired) == (len(DESIGN.looks), True, True)
    assert not _run({"base": 9, "twin": 9, "far": 9}, values=flat).paired  # the default: unpaired (pairing: none)
    assert state.seeds == {"twin": 3, "base": 9, "far": 9} and len(state.rounds) == len(DESIGN.looks)
    done = _run({"base": 9, "twin": 9, "far": 9}, values={**flat, "far": BASE + 0.5}, paired=True)
    assert (done.round, done.complete, done.seeds) == (1, True, {"twin": 3, "base": 3, "far": 3})  # both at once


def test_a_look_that_tested_nothing_spends_nothing_at_the_next():
    """far's first look keeps one complete pair of three (two failed seeds): it tests nothing. At the 5-seed look
    three pairs are present: the boundary is that of a first look at 3 of 9 (the replay passes the history of
    looks tested); counted from the planned schedule, 3 of 9 would be no new information and test nothing."""
    values = {k: v.copy() for k, v in VALUES.items()}
    values["far"][[0, 1]] = np.nan
    values["far"][2:] = values["base"][2:] + 0.2  # plainly different once tested
    pairs = [Pair("far", "base")]
    design = SequentialDesign(start=3, max=9, step=2, alpha=0.05, margin=0.02, n_comparisons=1)
    first = _run({"base": 3, "far": 3}, values=values, pairs=pairs, design=design, paired=True)
    assert first.outcomes["far"].stopped is None and math.isnan(first.outcomes["far"].result.p_boundary)
    assert first.outcomes["far"].fractions == []
    state = _run({"base": 5, "far": 5}, values=values, pairs=pairs, design=design, paired=True)
    r = state.outcomes["far"].result
    assert (state.outcomes["far"].stopped, r.used, state.outcomes["far"].missing) == ("different", 3.0, 2)
    assert r.p_boundary == pytest.approx(2 * design.thresholds(r.shares, (3 / 9,))[0][0], rel=1e-12)


def test_the_sign_names_the_direction_and_each_pairing_counts_its_failed_seeds():
    values = {k: v.copy() for k, v in VALUES.items()}
    values["far"] = values["base"] + 0.2
    for sign, word in ((-1, "worse"), (1, "better")):
        state = _run({"base": 3, "twin": 3, "far": 3}, values=values, paired=True, sign=sign)
        assert state.outcomes["far"].result.direction == word
    values["far"][1] = np.nan
    values["base"][1] = np.nan  # one seed failed on both sides: one pair, two seeds
    for paired, missing in ((True, 1), (False, 2)):
        state = _run({"base": 3, "twin": 3, "far": 3}, values=values, paired=paired)
        assert state.outcomes["far"].missing == missing, paired


def test_an_equivalence_stopped_before_its_test_of_no_difference_reports_p_one():
    state = _run({"base": 3, "twin": 3, "far": 3}, paired=True)
    twin = state.outcomes["twin"]
    assert twin.stopped == "equivalent" and not twin.result.final
    assert reported_p(twin, DESIGN) == 1.0
    assert math.isnan(reported_p(state.outcomes["far"].__class__(PAIRS[1]), DESIGN))  # never judged: NaN
