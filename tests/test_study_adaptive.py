"""Adaptive seeds (`seeds: {start, max, step}`) end to end with real tiny training: a variant far from the
baseline stops after round 1 as different, a twin of the baseline (the same config under another name) gets
more seeds and is decided equivalent in round 2; killed as round 2 begins and during it (each run held at the
step the test names by the step barrier, tests/step_barrier.py), the same command trains every run once and reaches the verdicts of an uninterrupted study (training is deterministic on a CPU
in float32, and a resumed run continues exactly).

Sizes of the effects at 60 steps (post-LN, whose seed noise at lr 1e-2 is ~0.03 where pre-LN's is ~0.15):
lr 1e-4 leaves the best val loss near 3.97 where lr 1e-2 reaches ~3.13, a Welch t of ~40 at 3 seeds; the twin's
values equal the baseline's seed for seed (diff 0), so its equivalence interval is +-(its half-width): at
margin 0.1 that is +-0.132 at 3 seeds (open: round 2 is needed) and +-0.068 at 5 (equivalent), with the base
seeds' best val losses 3.062, 3.164, 3.126, 3.114, 3.149 (sd 0.04 over 5) that this CPU float32 training gives.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.study_runs import BARRIER, ENV, TINY, assert_trained_once, last_step, run_killed, starts, summary

pytestmark = pytest.mark.slow
MARGIN = 0.1
SPEC = {"name": "adaptive", "description": "seeds only where a comparison is open",
        "base": {**TINY, **BARRIER, "max_steps": 60, "eval_interval": 20, "log_interval": 5, "lr": 1.0e-2,
                 "norm_placement": "post"},
        "variants": {"base": {}, "slow": {"lr": 1.0e-4}, "twin": {}},
        "seeds": {"start": 3, "max": 5, "step": 2},
        # unpaired, so the twin needs a second round (the kills below happen in it); paired, a twin's per-seed
        # differences are exactly 0 and it is decided at the first look (tests/test_adaptive_paired.py)
        "compare": {"baseline": "base", "margin": MARGIN, "pairing": "none"}}
ARGS = ("--pack", "auto")  # every cell of a round in one process: the variants differ only in lr
STEPS = list(range(0, 61, 5))
ROUND_1 = [f"{v}-seed{s}" for v in ("base", "slow", "twin") for s in range(3)]
ROUND_2 = [f"{v}-seed{s}" for v in ("base", "twin") for s in (3, 4)]


def verdicts(spec: Path, runs: Path) -> dict[str, tuple]:
    """variant -> (stopped, round, seeds, diff, ci_low, ci_high), replayed from the store as the planner does."""
    from gptlab.runner.spec import load_spec
    from gptlab.study.adaptive import replay_store

    state = replay_store(load_spec(spec), runs, None)
    assert state.complete
    return {name: (o.stopped, o.round, o.result.n, o.result.diff, o.result.ci_low, o.result.ci_high)
            for name, o in state.outcomes.items()}


def assert_same_verdicts(got: dict[str, tuple], want: dict[str, tuple]) -> None:
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in want.items()}  # stopped, round, seeds
    for name in want:
        assert got[name][3:] == pytest.approx(want[name][3:], abs=1e-5), name  # diff and its interval


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict:
    """The same study twice: uninterrupted (in the background), and killed as round 2 begins (its pack held
    before its first step), then during round 2 (held after step 25, past its step-20 checkpoint), then finished
    by the same command."""
    root = tmp_path_factory.mktemp("adaptive")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    whole = subprocess.Popen([sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(root / "whole"), *ARGS],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = root / "killed"
    exp = runs / "adaptive"
    seen = {}
    seen["out 1"] = run_killed(spec, runs, ARGS, root / "kill1.log", step=0, run=ROUND_2[0])
    seen["between"] = {name: (summary(exp / name)["status"] if (exp / name / "summary.json").exists() else None,
                              starts(exp / name), last_step(exp / name)) for name in ROUND_1 + ROUND_2}
    seen["out 2"] = run_killed(spec, runs, ARGS, root / "kill2.log", step=25, run=ROUND_2[0])
    seen["during"] = {name: (summary(exp / name)["status"], last_step(exp / name)) for name in ROUND_2}
    last = subprocess.run([sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(runs), *ARGS], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stdout + last.stderr
    whole_out = whole.communicate(timeout=600)[0]
    assert whole.returncode == 0, whole_out
    return {"spec": spec, "whole": root / "whole", "killed": runs, "seen": seen, "whole_out": whole_out,
            "last_out": last.stdout}


def test_the_far_variant_stops_after_round_1_and_the_twin_is_equivalent_after_round_2(studies):
    got = verdicts(studies["spec"], studies["whole"])
    assert got["slow"][:3] == ("different", 1, 3), got
    assert got["slow"][3] > 0.5, got  # lr 1e-4 is far worse
    assert got["twin"][:3] == ("equivalent", 2, 5), got  # decided, not left to the budget
    assert got["twin"][3] == pytest.approx(0.0, abs=1e-6), got  # the same runs under another name
    table = studies["whole_out"][studies["whole_out"].index("adaptive seeds: decided"):]
    assert "slow vs base" in table and "different" in table and "twin vs base" in table, table


@pytest.mark.parametrize("store", ["whole", "killed"])
def test_seeds_are_added_only_to_open_comparisons_and_trained_once(studies, store):
    exp = studies[store] / "adaptive"
    assert sorted(d.name for d in exp.iterdir() if d.is_dir()) == sorted(ROUND_1 + ROUND_2)
    seeds = []
    for name in ROUND_1 + ROUND_2:
        assert_trained_once(exp / name, STEPS)
        meta = yaml.safe_load((exp / name / "config.yaml").read_text())["run"]
        seeds.append((meta["variant"], meta["seed"]))
        assert name == f"{meta['variant']}-seed{meta['seed']}"
    assert len(set(seeds)) == len(seeds)  # no seed of a cell held twice


def test_killed_between_rounds_and_during_a_round_it_reaches_the_uninterrupted_verdicts(studies):
    seen = studies["seen"]
    # the first kill came after round 1 ended and before round 2 took a step (its pack held before step 1)
    assert all(seen["between"][n][0] == "finished" for n in ROUND_1), seen["between"]
    assert all(seen["between"][n][0] == "running" and seen["between"][n][2] == 0 and len(seen["between"][n][1]) == 1
               for n in ROUND_2), seen["between"]
    # the second came during round 2, after step 25 (past the step-20 checkpoint)
    assert set(seen["during"].values()) == {("running", 25)}, seen["during"]
    exp = studies["killed"] / "adaptive"
    for name in ROUND_1:  # round 1 was not started again
        assert starts(exp / name) == seen["between"][name][1], name
    assert_same_verdicts(verdicts(studies["spec"], studies["killed"]), verdicts(studies["spec"], studies["whole"]))
    for name in ROUND_1 + ROUND_2:  # run by run, the same numbers
        a, b = (summary(studies[s] / "adaptive" / name) for s in ("whole", "killed"))
        assert a["best_val_loss"] == pytest.approx(b["best_val_loss"], rel=1e-5), name
    table = lambda out: out[out.index("adaptive seeds: decided"):]  # noqa: E731 - the printed decisions
    assert table(studies["last_out"]) == table(studies["whole_out"])


def test_rerun_failed_retrains_a_failed_seed_of_a_decided_study(studies, tmp_path):
    """A finished study whose twin lost a seed (failed): its replay is complete (the twin ends at the budget
    without a value), yet `--rerun failed` must train that seed again, and only it."""
    runs = tmp_path / "runs"
    shutil.copytree(studies["whole"], runs)
    exp = runs / "adaptive"
    failed = exp / "twin-seed4" / "summary.json"
    failed.write_text(json.dumps({**summary(exp / "twin-seed4"), "status": "failed", "error": "injected"}))
    before = {name: starts(exp / name) for name in ROUND_1 + ROUND_2}
    out = subprocess.run([sys.executable, "-m", "gptlab", "run", str(studies["spec"]), "--runs", str(runs), *ARGS,
                          "--rerun", "failed"], env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert [n for n in ROUND_1 + ROUND_2 if starts(exp / n) != before[n]] == ["twin-seed4"]
    assert_trained_once(exp / "twin-seed4", STEPS)
    # a run alone in its pack matches its packed self to float32 rounding, not bit for bit
    assert_same_verdicts(verdicts(studies["spec"], runs), verdicts(studies["spec"], studies["whole"]))


def test_the_report_states_the_design_and_the_fixed_design_of_equal_power(studies, tmp_path):
    """`gptlab report` of the uninterrupted study: the design section's table, summary.csv's rounds/stopped, and
    the runs-saved sentence, whose fixed design is recomputed here from summary.csv's numbers."""
    import csv
    import re

    import numpy as np

    from gptlab.stats.sequential_sim import equal_power_fixed, simulate_fixed
    from gptlab.runner.spec import load_spec
    from gptlab.study.adaptive import replay_store

    out = subprocess.run([sys.executable, "-m", "gptlab", "report", "adaptive", "--runs", str(studies["whole"]),
                          "--out", str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stdout + out.stderr
    md = (tmp_path / "adaptive" / "report.md").read_text()
    assert "## Design: adaptive seeds" in md and "| slow vs base | different | 1 | 3 |" in md, md
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "adaptive" / "summary.csv").open())}
    assert (rows["slow"]["stopped"], rows["slow"]["rounds"]) == ("different", "1")
    assert rows["twin"]["stopped"] == "equivalent" and rows["twin"]["rounds"] == "2"
    said = re.search(r"Runs trained: (\d+) .*?needs (\d+) seeds per variant, (\d+) runs", md)
    assert said, md
    assert int(said.group(1)) == len(ROUND_1 + ROUND_2)
    state = replay_store(load_spec(studies["spec"]), studies["whole"], None)
    sd = float(np.mean([(float(rows[v]["std"]) + float(rows["base"]["std"])) / 2 for v in ("slow", "twin")]))
    diffs = [state.outcomes[v].result.diff for v in ("slow", "twin")]
    eq = equal_power_fixed(state.design, diffs, sd)
    assert (int(said.group(2)), int(said.group(3))) == (eq.n, 3 * eq.n)
    shorter = simulate_fixed([eq.n - 1] * 2, diffs, sd, alpha=0.05, margin=MARGIN, n_studies=2000)
    assert eq.n == 2 or np.any(shorter.power() < eq.power - np.sqrt(eq.power * (1 - eq.power) / 2000))
