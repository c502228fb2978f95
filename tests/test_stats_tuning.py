"""The tuning stage's choice within seed and the lr sensitivity (gptlab.stats.tuning), against a direct
computation: a seed that failed at one candidate leaves the paired comparison; sensitivity as Wortsman et al.
(2023) define it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gptlab.stats.tuning import candidate_means, choose, common_seeds, sensitivity

NAN = math.nan


def test_a_seed_missing_at_one_candidate_leaves_the_paired_choice() -> None:
    # seed 1 is an easy seed (low loss everywhere) that failed at candidate 0; unpaired, candidate 0's mean runs
    # over the hard seeds only and looks worse than it is; within seed (seeds 0 and 2), candidate 0 is better
    values = [{0: 3.00, 1: NAN, 2: 3.10}, {0: 3.05, 1: 2.50, 2: 3.15}]
    assert common_seeds(values) == [0, 2]
    means, seeds = candidate_means(values, "auto")
    assert seeds == [0, 2] and means == pytest.approx([3.05, 3.10])
    assert choose(values, sign=-1, pairing="auto") == 0
    assert choose(values, sign=-1, pairing="none") == 1  # 2.9 over three seeds beats 3.05 over two
    assert choose(values, sign=+1, pairing="auto") == 1


def test_nothing_finished_and_all_failed_candidates() -> None:
    assert choose([{0: NAN}, {0: NAN}], sign=-1) is None
    assert choose([{0: NAN, 1: NAN}, {0: 3.0, 1: 3.2}], sign=-1) == 1  # a candidate that never finished drops out


def test_sensitivity_is_grid_mean_minus_best() -> None:
    grid = [3.2, 3.0, 3.1, 3.6]
    assert sensitivity(grid, sign=-1) == pytest.approx(np.mean(grid) - 3.0)
    assert sensitivity([3.0, 3.0, 3.0], sign=-1) == 0.0
    assert sensitivity([0.5, 0.7], sign=+1) == pytest.approx(0.7 - 0.6)
    assert sensitivity([3.0, NAN, 3.4], sign=-1) == pytest.approx((3.0 + 3.4 + 3.4) / 3 - 3.0)  # diverged = worst
    assert math.isnan(sensitivity([NAN, NAN], sign=-1))
