"""`tune:` end to end with real tiny training: stage 1 trains every cell's candidates (packed by default), the
choice is the argmin of the tuning runs, stored in tuning.json and reused, stage 2 trains the comparison seeds
at each cell's own choice (and at the shared base value); the study is killed in stage 1 and again in stage 2,
and the same command finishes it without training a run twice.

The two cells want different learning rates by construction: with warmup_steps 1000 over 60 steps the
long_warmup cell trains at under 6% of its lr, so the larger lr wins (best val ~3.2 at 0.1 vs ~3.75 at 0.01
over seeds 100-104); the post_ln cell is best at 0.01 (~3.13 vs 3.29-3.48). Seed noise is ~0.05.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.study_runs import BARRIER, TINY, assert_trained_once, gptlab_run, last_step, pid_of, run_killed, starts, \
    status, summary

pytestmark = pytest.mark.slow
LRS = [1.0e-2, 1.0e-1]
SPEC = {"name": "tuned", "description": "each cell at its own best lr",
        "base": {**TINY, **BARRIER, "max_steps": 60, "eval_interval": 20, "log_interval": 5,
                 "norm_placement": "post"},
        "variants": {"post_ln": {}, "long_warmup": {"warmup_steps": 1000}},
        "seeds": [0], "tune": {"lr": LRS, "seeds": [100], "compare_shared": True}, "compare": {"baseline": "post_ln"}}
CELLS = ("post_ln", "long_warmup")
EXPECTED = {"post_ln": 1.0e-2, "long_warmup": 1.0e-1}  # by construction (module docstring)
STEPS = list(range(0, 61, 5))  # metrics.jsonl rows; checkpoints at 20, 40, 60


def tuning_names(cell: str) -> list[str]:
    return [f"{cell}-tune-lr={lr:g}-seed100" for lr in LRS]


def compare_names(cell: str, seed: int = 0) -> list[str]:
    return [f"{cell}-seed{seed}", f"{cell}-shared-seed{seed}"]


def write_spec(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**SPEC, **changes}, sort_keys=False))
    return path


def run_meta(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def snapshot(exp: Path) -> dict:
    """What the tests read from a store at one moment (later tests change the store)."""
    tuning = exp / "tuning.json"
    return {"tuning": json.loads(tuning.read_text()), "tuning_mtime": tuning.stat().st_mtime_ns,
            "runs": {d.name: {"config": run_meta(d), "summary": summary(d), "starts": starts(d),
                              "log": (d / "train.log").read_text()}
                     for d in sorted(exp.iterdir()) if d.is_dir()}}


def argmin_choice(runs: dict, cell: str) -> float:
    """The lr whose tuning run has the lowest best_val_loss, from summary.json (one tuning seed)."""
    losses = {runs[n]["config"]["train"]["lr"]: runs[n]["summary"]["best_val_loss"] for n in tuning_names(cell)}
    return min(losses, key=losses.get)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tune")


@pytest.fixture(scope="module")
def first(root) -> dict:
    """The study with the default packing (none asked for), killed by SIGKILL (the whole process group) in
    stage 1 as its pack is held after step 25 (past its first checkpoint), then again in stage 2 as its second run
    is held after step 5 (the step barrier, tests/step_barrier.py), then finished by the same command; a snapshot
    of its store and what was seen at each kill."""
    spec, runs = write_spec(root / "spec.yaml"), root / "runs"
    exp = runs / "tuned"
    tuning_dirs = [exp / n for c in CELLS for n in tuning_names(c)]
    compare_dirs = [exp / n for c in CELLS for n in compare_names(c)]
    seen = {}
    # held after step 25 of the packed stage 1 (checkpoint at 20), then killed
    run_killed(spec, runs, (), root / "kill1.log", step=25, run=tuning_names(CELLS[0])[0])
    seen["stage 1"] = {"tuning.json": (exp / "tuning.json").exists(),
                       "statuses": {d.name: status(d) for d in tuning_dirs},
                       "steps": {d.name: last_step(d) for d in tuning_dirs}}
    # held after step 5 of the second comparison run (the first has finished), then killed
    seen["out 2"] = run_killed(spec, runs, (), root / "kill2.log", step=5, run=compare_dirs[1].name)
    seen["stage 2"] = {"tuning.json": (exp / "tuning.json").exists(),
                       "statuses": {d.name: status(d) for d in compare_dirs},
                       "steps": {d.name: last_step(d) for d in compare_dirs},
                       "starts": {d.name: starts(d) for d in tuning_dirs + compare_dirs}}
    out = gptlab_run(spec, runs)
    assert out.returncode == 0, out.stdout + out.stderr
    return {"seen": seen, **snapshot(exp)}


@pytest.fixture(scope="module")
def more_seeds(first, root) -> dict:
    """The finished study with a second comparison seed (packed, to save processes): the choice is reused."""
    out = gptlab_run(write_spec(root / "spec.yaml", seeds=[0, 1]), root / "runs", "--pack", "auto")
    assert out.returncode == 0, out.stdout + out.stderr
    return {"out": out.stdout, **snapshot(root / "runs" / "tuned")}


def test_the_kills_landed_in_stage_1_and_in_stage_2(first):
    one, two = first["seen"]["stage 1"], first["seen"]["stage 2"]
    assert not one["tuning.json"] and not any(s == "finished" for s in one["statuses"].values()), one
    assert set(one["steps"].values()) == {25}, one  # the pack was held after step 25, all members together
    assert two["tuning.json"], first["seen"]["out 2"]
    statuses = list(two["statuses"].values())
    assert statuses[0] == "finished" and statuses[1] != "finished" and statuses[2:] == [None, None], two
    assert list(two["steps"].values()) == [60, 5, -1, -1], two


def test_stage_1_trains_every_candidate_packed_and_tuning_json_names_the_argmin(first):
    runs, tuning = first["runs"], first["tuning"]
    for cell in CELLS:
        for name in tuning_names(cell):
            assert runs[name]["summary"]["status"] == "finished", name
            assert runs[name]["config"]["run"]["stage"] == "tune", name
            assert "at" not in runs[name]["config"]["run"], name
        chosen = tuning["cells"][cell]["chosen"]
        assert chosen == {"lr": argmin_choice(runs, cell)}, (cell, tuning["cells"][cell])
        assert chosen == {"lr": EXPECTED[cell]}, (cell, tuning["cells"][cell]["means"])
        assert f"tuned {cell}: lr={EXPECTED[cell]:g}" in first["seen"]["out 2"]
    # packed under the default: each attempt (the killed one, the resumed one) was one process for every member
    attempts = [[pid_of(ln) for ln in runs[name]["starts"]] for cell in CELLS for name in tuning_names(cell)]
    assert all(len(a) == 2 for a in attempts) and len({a[0] for a in attempts}) == len({a[1] for a in attempts}) == 1, \
        attempts
    compare_pids = {pid_of(ln) for cell in CELLS for name in compare_names(cell) for ln in runs[name]["starts"]}
    assert len(compare_pids) == 5 and not compare_pids & set(attempts[0])  # 4 runs, one resumed: unpacked


def test_stage_2_trains_the_comparison_seeds_at_each_cells_choice_and_at_the_shared_value(first):
    runs = first["runs"]
    assert sorted(runs) == sorted(n for c in CELLS for n in tuning_names(c) + compare_names(c))
    for cell in CELLS:
        tuned, shared = (runs[n]["config"] for n in compare_names(cell))
        assert tuned["train"]["lr"] == first["tuning"]["cells"][cell]["chosen"]["lr"] == EXPECTED[cell]
        assert (tuned["run"]["stage"], tuned["run"]["at"]) == ("compare", "tuned")
        assert shared["train"]["lr"] == first["tuning"]["cells"][cell]["base"]["lr"] == 1.0e-3  # the default lr
        assert (shared["run"]["stage"], shared["run"]["at"]) == ("compare", "shared")


def test_killed_twice_every_run_was_trained_once(first, root):
    exp = root / "runs" / "tuned"
    for cell in CELLS:
        for name in tuning_names(cell) + compare_names(cell):
            assert_trained_once(exp / name, STEPS)
    killed = first["seen"]["stage 2"]["starts"]
    for name in tuning_names(CELLS[0]) + tuning_names(CELLS[1]) + compare_names(CELLS[0])[:1]:
        assert first["runs"][name]["starts"] == killed[name], name  # finished before the 2nd kill: not restarted
    # the run killed in stage 2 at step 5 (before its first checkpoint) began again once, from step 0
    assert [ln.split(" at ")[0] for ln in first["runs"][compare_names(CELLS[0])[1]]["starts"]] == \
        ["== fresh", "== restart"]
    for cell in CELLS:  # the killed pack's members (at step 25) resumed from their step-20 checkpoint, once
        for name in tuning_names(cell):
            assert [ln.split(" (pid")[0] for ln in first["runs"][name]["starts"]] == \
                ["== fresh at step 0", "== resume at step 20"], name


def test_more_comparison_seeds_reuse_the_stored_choice_and_retrain_nothing(first, more_seeds):
    assert more_seeds["tuning"] == first["tuning"]
    assert more_seeds["tuning_mtime"] == first["tuning_mtime"]
    assert not re.search(r"^tuned ", more_seeds["out"], re.M)  # nothing decided again
    for name, before in first["runs"].items():  # tuning runs and seed 0: untouched
        assert more_seeds["runs"][name]["log"] == before["log"], name
        assert more_seeds["runs"][name]["summary"] == before["summary"], name
    for cell in CELLS:
        for name, at, lr in zip(compare_names(cell, 1), ("tuned", "shared"), (EXPECTED[cell], 1.0e-3)):
            new = more_seeds["runs"][name]
            assert new["summary"]["status"] == "finished" and len(new["starts"]) == 1, name
            assert (new["config"]["train"]["lr"], new["config"]["run"]["at"]) == (lr, at), name


def _independent_verdict(a: list[float], b: list[float], margin: float = 0.02) -> str:
    """a vs b as the report must judge it, computed here with scipy and statsmodels: Welch's test and a Welch
    TOST at the margin, the two adjusted together by Holm (the report's family for one comparison)."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_ind

    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    p_tost = ttost_ind(np.asarray(a), np.asarray(b), -margin, margin, usevar="unequal")[0]
    p_diff, p_eq = multipletests([p, p_tost], method="holm")[1]
    if p_diff < 0.05:
        return "better" if np.mean(a) < np.mean(b) else "worse"
    return "equivalent" if p_eq < 0.05 else "inconclusive"


def test_the_flip_sentence_appears_exactly_when_the_verdicts_at_shared_and_tuned_values_differ(more_seeds, root):
    """`gptlab report` on the study with two comparison seeds: its sentence for long_warmup vs post_ln names the
    verdicts computed here from the stored runs, says "tuning changes the verdict" exactly when they differ,
    and then leads the findings."""
    runs = more_seeds["runs"]
    loss = lambda name: runs[name]["summary"]["best_val_loss"]  # noqa: E731
    verdicts = {at: _independent_verdict([loss(f"long_warmup{infix}-seed{s}") for s in (0, 1)],
                                         [loss(f"post_ln{infix}-seed{s}") for s in (0, 1)])
                for at, infix in (("tuned", ""), ("shared", "-shared"))}
    out = subprocess.run(
        [sys.executable, "-m", "gptlab", "report", "tuned", "--runs", str(root / "runs"), "--out",
         str(root / "reports")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    text = (root / "reports" / "tuned" / "report.md").read_text()
    lines = [x for x in text.splitlines() if x.startswith("- long_warmup vs post_ln:") and "at the shared" in x]
    line = lines[0]  # in the Tuning section; again first among the findings when the verdict flips
    assert set(lines) == {line} and len(lines) in (1, 2), lines
    shared_part, tuned_part = line.split(" at the shared ", 1)
    assert shared_part.split(": ", 1)[1].startswith(verdicts["shared"]), (line, verdicts)
    assert tuned_part.split(", ", 1)[1].startswith(verdicts["tuned"]), (line, verdicts)
    flipped = verdicts["shared"] != verdicts["tuned"]
    # by construction it flips: at the shared lr 1e-3 long_warmup trains at under 6% of it and is clearly worse;
    # each at its own lr the two are close (the constructed cases of each branch: tests/test_report_stages.py)
    assert verdicts["shared"] == "worse" and flipped, verdicts
    assert ("tuning changes the verdict" in line) == flipped, (line, verdicts)
    findings = text.split("## Findings", 1)[1].strip().splitlines()
    assert (findings[0] == line) == flipped and len(lines) == (2 if flipped else 1), findings[:2]
    assert "## Tuning" in text and text.index("## Tuning") < text.index("## Results")
    assert (root / "reports" / "tuned" / "figures" / "tuning.png").stat().st_size > 1000
    # both choices lie at an end of the grid [0.01, 0.1] (by construction): the edge warnings say which end
    tuning_section = text.split("## Tuning", 1)[1].split("\n## ", 1)[0]
    warnings = [x for x in tuning_section.splitlines() if x.startswith("- Warning: ")]
    assert warnings == ["- Warning: the best lr of long_warmup is the largest tried: extend the list.",
                        "- Warning: the best lr of post_ln is the smallest tried: extend the list."], warnings
    # summary.csv and effects.csv say at which value each row was trained (`at`), with the value itself
    folder = root / "reports" / "tuned"
    summary = {(r["variant"], r["at"]): r for r in csv.DictReader((folder / "summary.csv").open())}
    assert sorted(summary) == sorted((c, at) for c in CELLS for at in ("tuned", "shared")), sorted(summary)
    for cell in CELLS:
        assert float(summary[(cell, "tuned")]["lr"]) == EXPECTED[cell]
        assert float(summary[(cell, "shared")]["lr"]) == 1.0e-3
        assert int(summary[(cell, "tuned")]["n"]) == int(summary[(cell, "shared")]["n"]) == 2
    for at, infix in (("tuned", ""), ("shared", "-shared")):
        diff = np.mean([loss(f"long_warmup{infix}-seed{s}") - loss(f"post_ln{infix}-seed{s}") for s in (0, 1)])
        assert float(summary[("long_warmup", at)]["diff"]) == pytest.approx(diff, rel=1e-4), at


def test_rerun_all_decides_again_from_retrained_tuning_runs(more_seeds, root):
    exp = root / "runs" / "tuned"
    record = json.loads((exp / "tuning.json").read_text())
    for cell in CELLS:  # a stale choice, the other way round: --rerun all must not keep it
        record["cells"][cell]["chosen"] = {"lr": EXPECTED[CELLS[1 - CELLS.index(cell)]]}
    (exp / "tuning.json").write_text(json.dumps(record))
    out = gptlab_run(root / "spec.yaml", root / "runs", "--rerun", "all", "--pack", "auto")
    assert out.returncode == 0, out.stdout + out.stderr
    after = snapshot(exp)
    for cell in CELLS:
        assert after["tuning"]["cells"][cell]["chosen"] == {"lr": argmin_choice(after["runs"], cell)}
        assert after["tuning"]["cells"][cell]["chosen"] == {"lr": EXPECTED[cell]}
        assert f"tuned {cell}: lr={EXPECTED[cell]:g}" in out.stdout
        for name in tuning_names(cell) + compare_names(cell, 0) + compare_names(cell, 1):  # all trained again
            assert after["runs"][name]["starts"] != more_seeds["runs"][name]["starts"], name
            assert after["runs"][name]["summary"]["status"] == "finished", name
        for seed in (0, 1):
            assert after["runs"][f"{cell}-seed{seed}"]["config"]["train"]["lr"] == EXPECTED[cell]


def test_dry_run_shows_both_stages_and_the_most_runs_writing_nothing(root):
    spec = write_spec(root / "dry.yaml", seeds=[0, 1, 2])
    out = gptlab_run(spec, root / "dry_runs", "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (root / "dry_runs").exists()
    text = out.stdout
    assert "stage 1: tuning lr per cell (2 values x 1 tuning seed(s); packed: auto)" in text, text
    assert "stage 2: comparison" in text and text.index("stage 1") < text.index("stage 2"), text
    for cell in CELLS:
        assert all(name in text for name in tuning_names(cell) + compare_names(cell, 2)), text
    assert "most runs this study can take: 16" in text, text  # 2 cells x (2 lrs + 3 seeds x (tuned, shared))


def test_dry_run_of_a_tuned_adaptive_study_before_tuning_shows_round_1_at_base_values(root):
    spec = write_spec(root / "dry_adaptive.yaml", seeds={"start": 3, "max": 5, "step": 2})
    out = gptlab_run(spec, root / "dry_adaptive_runs", "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (root / "dry_adaptive_runs").exists()
    assert "stage 2: adaptive seeds: round 1 trains 3 seeds per cell" in out.stdout, out.stdout
    assert "shown at base values" in out.stdout and f"{CELLS[1]}-shared-seed2" in out.stdout, out.stdout
    assert "most runs this study can take: 24" in out.stdout, out.stdout  # 2 cells x (2 lrs + 5 seeds x 2)


@pytest.mark.parametrize(("pack", "processes"), [((), 1), (("--pack", "seeds"), 2)])
def test_the_tuning_stage_packs_auto_unless_pack_says_otherwise(tmp_path, pack, processes):
    """README: the tuning stage trains packed, `--pack auto` unless you say otherwise. Two candidates of one
    cell: one process for both by default; `--pack seeds` packs only seeds, so each candidate is its own."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "tp", "base": {**TINY, "max_steps": 10, "eval_interval": 10},
                                    "seeds": [0], "tune": {"lr": LRS, "seeds": [100]}}, sort_keys=False))
    out = gptlab_run(spec, tmp_path / "runs", *pack)
    assert out.returncode == 0, out.stdout + out.stderr
    exp = tmp_path / "runs" / "tp"
    tuning = sorted(d for d in exp.iterdir() if "tune-lr=" in d.name)
    assert len(tuning) == 2 and all(status(d) == "finished" for d in tuning), tuning
    tuning_pids = {pid_of(ln) for d in tuning for ln in starts(d)}
    assert len(tuning_pids) == processes, (tuning_pids, out.stdout)
    assert status(exp / "seed0") == "finished"
