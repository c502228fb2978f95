"""A tuned study's verdict-flip sentences (gptlab.report.stages.flip_sentences) on constructed results tables:
a verdict that differs between the shared and the tuned values must be said to change (and lead the findings),
one that does not must be said to stay the same."""
from __future__ import annotations

import pandas as pd

from gptlab.report.stages import CellTuning, Tuning, flip_sentences, verdict_word

TUNING = Tuning(keys=["lr"], candidates={"lr": [0.01, 0.1]}, seeds=[100],
                cells=[CellTuning("fast", "fast", {"lr": 0.1}, {"lr": 0.001}),
                       CellTuning("base", "base", {"lr": 0.01}, {"lr": 0.001})],
                metric="val/loss", compare_shared=True)


def table(diff: float, significant: bool, equivalent: bool) -> pd.DataFrame:
    """A results table: `fast` against the baseline `base` (lower is better), and the baseline's own row."""
    return pd.DataFrame([{"variant": "fast", "baseline": "base", "diff": diff, "significant": significant,
                          "equivalent": equivalent},
                         {"variant": "base", "baseline": "base", "diff": float("nan"), "significant": None,
                          "equivalent": None}])


def test_a_verdict_that_differs_is_said_to_change():
    tuned, shared = table(-0.25, True, False), table(0.004, False, False)
    assert (verdict_word(tuned.iloc[0], -1), verdict_word(shared.iloc[0], -1)) == ("better", "inconclusive")
    sentences, flipped = flip_sentences(TUNING, tuned, shared, sign=-1, margin=0.02)
    assert flipped is True
    assert sentences == ["fast vs base: inconclusive (+0.004) at the shared lr 0.001, better by 0.250 at tuned "
                         "lrs (0.1 vs 0.01): tuning changes the verdict."]


def test_a_verdict_that_stays_is_said_to_stay():
    tuned, shared = table(0.003, False, True), table(-0.001, False, True)
    sentences, flipped = flip_sentences(TUNING, tuned, shared, sign=-1, margin=0.02)
    assert flipped is False
    assert sentences == ["fast vs base: equivalent within ±0.02 at the shared lr 0.001, equivalent within ±0.02 "
                         "at tuned lrs (0.1 vs 0.01): the same verdict."]


def test_one_flip_among_several_comparisons_flips_the_study():
    tuned = pd.concat([table(0.3, True, False).iloc[:1].assign(variant="slow"), table(-0.25, True, False)])
    shared = pd.concat([table(0.004, False, False).iloc[:1].assign(variant="slow"), table(-0.2, True, False)])
    sentences, flipped = flip_sentences(TUNING, tuned, shared, sign=-1, margin=0.02)
    assert flipped is True  # the flip came first; the later comparison that kept its verdict does not undo it
    assert [s.split(":")[0] for s in sentences] == ["slow vs base", "fast vs base"]
    assert [s.rsplit(": ", 1)[1] for s in sentences] == ["tuning changes the verdict.", "the same verdict."]
