"""`tune: {..., at: smallest}`: a scale study tunes once, at its smallest size (by parameter count), and every
size's comparison runs train at the value their variant chose there (μP's zero-shot transfer, Tensor
Programs V). Planned from the spec alone (fast), then a real tiny study trained and reported (slow): one
tuning stage at the smallest size, every size at the stored choice, the Tuning section's transfer sentence
under mup and its warning under standard only. A spec without scale: is refused in one line, exit 2.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gptlab.runner.spec import load_spec
from gptlab.study import tuning
from tests.study_runs import ENV, gptlab_run

# sizes declared largest first: the smallest is found by parameter count, not by position
SPEC = """\
name: tuneat
base: {n_head: 2, block_size: 16, batch_size: 4, max_steps: 12, eval_interval: 6, eval_steps: 2, dropout: 0.0,
       warmup_steps: 2, log_interval: 6, lr: 3.0e-3, wandb: disabled, dtype: float32, diagnostics: "off"}
variants:
  std: {parametrization: standard}
  mup: {parametrization: mup, mup_base_width: 16}
scale:
  l: {n_layer: 2, n_embd: 32}
  s: {n_layer: 1, n_embd: 16}
  m: {n_layer: 1, n_embd: 32}
tune: {lr: [1.0e-3, 1.0e-2], seeds: [100], at: smallest}
seeds: [0, 1]
compare: {baseline: std}
"""


def _write(tmp: Path, text: str = SPEC) -> Path:
    path = tmp / "tuneat.yaml"
    path.write_text(text)
    return path


def test_only_the_smallest_size_is_tuned_and_every_size_reuses_its_variants_choice(tmp_path):
    spec = load_spec(_write(tmp_path))
    runs = tuning.tuning_runs(spec)
    assert {r.study["size"] for r in runs} == {"s"}
    assert sorted(r.name for r in runs) == sorted(f"{v}-size=s-tune-lr={lr}-seed100" for v in ("std", "mup")
                                                  for lr in ("0.001", "0.01"))
    chosen = {"std-size=s": {"lr": 1.0e-2}, "mup-size=s": {"lr": 1.0e-3}}
    every = {c.name: chosen[tuning.source(spec, c).name] for c in spec.cells}
    compare = tuning.compare_runs(spec, every, {c.name: spec.seed_list() for c in spec.cells})
    assert {r.study["size"] for r in compare} == {"s", "m", "l"} and len(compare) == 2 * 3 * 2
    for run in compare:
        assert run.config.train.lr == chosen[f"{run.variant}-size=s"]["lr"], run.name


def test_without_at_every_size_is_tuned(tmp_path):
    spec = load_spec(_write(tmp_path, SPEC.replace(", at: smallest", "")))
    assert {r.study["size"] for r in tuning.tuning_runs(spec)} == {"s", "m", "l"}


@pytest.mark.parametrize("text, words", [
    (SPEC.split("scale:")[0] + "tune: {lr: [1.0e-3, 1.0e-2], seeds: [100], at: smallest}\nseeds: [0, 1]\n",
     ("tune.at", "no scale:", "drop at: smallest")),
    (SPEC.replace("at: smallest", "at: largest"), ("tune.at", "invalid choice 'largest'", "at: smallest")),
])
def test_bad_tune_at_exits_2_with_one_line_naming_file_key_and_fix(tmp_path, text, words):
    path = _write(tmp_path, text)
    got = subprocess.run([sys.executable, "-m", "gptlab", "run", str(path), "--runs", str(tmp_path / "runs"),
                          "--dry-run"], env=ENV, capture_output=True, text=True, timeout=300)
    assert got.returncode == 2, got.stdout + got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and all(w in lines[0] for w in words), got.stderr
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def studied(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tuneat")
    spec = _write(root)
    dry = gptlab_run(spec, root / "runs", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    (root / "dry.txt").write_text(dry.stdout)
    run = gptlab_run(spec, root / "runs", "--pack", "auto")  # a variant's 2 lrs, a cell's 2 seeds: 1 process
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (root / "run.txt").write_text(run.stdout + run.stderr)
    report = subprocess.run([sys.executable, "-m", "gptlab", "report", "tuneat", "--runs", str(root / "runs"),
                             "--out", str(root / "reports")], env=ENV, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr
    return root


@pytest.mark.slow
def test_dry_run_and_run_have_one_tuning_stage_at_the_smallest_size(studied):
    dry = (studied / "dry.txt").read_text()
    stage1 = dry.split("stage 2")[0]
    tune_rows = [ln.split()[0] for ln in stage1.splitlines() if "-tune-" in ln]
    assert sorted(tune_rows) == sorted(f"{v}-size=s-tune-lr={lr}-seed100" for v in ("std", "mup")
                                       for lr in ("0.001", "0.01")), dry
    assert "at the smallest size (s) only" in stage1
    log = (studied / "run.txt").read_text()
    assert log.count("== stage 1: tuning") == 1, log
    exp = studied / "runs" / "tuneat"
    tuned = sorted(d.name for d in exp.iterdir() if d.is_dir() and "-tune-" in d.name)
    assert tuned == sorted(tune_rows)


@pytest.mark.slow
def test_every_sizes_comparison_runs_train_at_the_lr_chosen_at_the_smallest_size(studied):
    exp = studied / "runs" / "tuneat"
    record = json.loads((exp / "tuning.json").read_text())
    assert sorted(record["cells"]) == ["mup-size=s", "std-size=s"]
    # the choice is the argmin of the tuning runs' stored best_val_loss (one tuning seed)
    for variant in ("std", "mup"):
        losses = {}
        for lr in ("0.001", "0.01"):
            summary = json.loads((exp / f"{variant}-size=s-tune-lr={lr}-seed100" / "summary.json").read_text())
            losses[float(lr)] = summary["best_val_loss"]
        assert record["cells"][f"{variant}-size=s"]["chosen"]["lr"] == min(losses, key=losses.get)
    compared = [d for d in exp.iterdir() if d.is_dir() and "-tune-" not in d.name]
    assert len(compared) == 2 * 3 * 2
    for d in compared:
        variant, size = d.name.split("-")[:2]
        lr = yaml.safe_load((d / "config.yaml").read_text())["train"]["lr"]
        assert lr == record["cells"][f"{variant}-size=s"]["chosen"]["lr"], d.name
        assert lr != 3.0e-3 and size in ("size=s", "size=m", "size=l")


@pytest.mark.slow
def test_the_tuning_section_warns_under_standard_and_not_under_mup(studied):
    text = (studied / "reports" / "tuneat" / "report.md").read_text()
    section = text.split("## Tuning", 1)[1].split("\n## ", 1)[0]
    assert "Tuned at the smallest size only" in section and "every larger size (m, l)" in section
    warnings = [ln for ln in section.splitlines() if ln.startswith("- Warning") and "untested" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("- Warning: std (parametrization standard)"), section
    assert "untested at m, l" in warnings[0]
    mup = [ln for ln in section.splitlines() if "as μP intends" in ln]
    assert len(mup) == 1 and "parametrization mup: mup)" in mup[0] and "std" not in mup[0], section


def test_the_reports_list_of_tunes_own_keys_is_the_specs():
    from gptlab.report.stages import TUNE_OWN_KEYS
    from gptlab.runner.design import TUNE_KEYS

    assert set(TUNE_OWN_KEYS) == set(TUNE_KEYS)


def test_decide_writes_the_smallest_sizes_choice_and_a_rerun_reuses_it_at_every_size(tmp_path):
    """decide() on stored values (no training): each variant's argmin at the smallest size, tuning.json holds
    only those cells (and where each other cell took its value from), and stored_choice gives every cell its
    source's value."""
    from gptlab.study.values import Stored

    spec = load_spec(_write(tmp_path))
    loss = {("std", 1.0e-3): 3.0, ("std", 1.0e-2): 2.5, ("mup", 1.0e-3): 2.4, ("mup", 1.0e-2): 2.9}
    results = {r.name: Stored("finished", loss[(r.variant, r.config.train.lr)]) for r in tuning.tuning_runs(spec)}
    chosen = tuning.decide(spec, tmp_path, results)
    want = {"std": 1.0e-2, "mup": 1.0e-3}
    assert chosen == {c.name: {"lr": want[c.variant]} for c in spec.cells}
    record = json.loads((tmp_path / "tuneat" / "tuning.json").read_text())
    assert sorted(record["cells"]) == ["mup-size=s", "std-size=s"]
    assert record["transferred"] == {f"{v}-size={s}": f"{v}-size=s" for v in ("std", "mup") for s in ("m", "l")}
    assert tuning.stored_choice(spec, tmp_path) == chosen
    every = load_spec(_write(tmp_path, SPEC.replace(", at: smallest", "")))
    assert tuning.stored_choice(every, tmp_path) is None  # m and l were never tuned: tuned in stage 1 then
