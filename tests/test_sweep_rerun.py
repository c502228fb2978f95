"""A sweep rerun never counts runs trained with other fixed values; bad files and names exit 2."""
from tests.conftest import cli

SWEEP = """name: fx
method: grid
metric: {name: best_val_loss, goal: minimize}
command: ["${env}", "gptlab", "train", "${args}"]
parameters:
  n_layer: {values: [1]}
  seed: {values: [0]}
  max_steps: {value: 20}
"""
TINY_SETS = ["--set", "n_embd=16", "--set", "n_head=2", "--set", "block_size=16", "--set", "batch_size=8",
             "--set", "eval_steps=2", "--set", "eval_interval=10"]


def test_changed_fixed_values_are_refused_not_reused(tmp_path):
    (tmp_path / "fx.yaml").write_text(SWEEP)
    runs = str(tmp_path / "runs")
    first = cli("sweep", str(tmp_path / "fx.yaml"), "--runs", runs, "--wandb", "disabled", *TINY_SETS)
    assert first.returncode == 0, first.stdout + first.stderr
    changed = cli("sweep", str(tmp_path / "fx.yaml"), "--runs", runs, "--wandb", "disabled", *TINY_SETS,
                  "--set", "max_steps=30")
    assert changed.returncode == 2 and "max_steps: 20 -> 30" in changed.stderr
    extra = cli("sweep", str(tmp_path / "fx.yaml"), "--runs", runs, "--wandb", "disabled", *TINY_SETS,
                "--set", "lr=0.01")
    assert extra.returncode == 2 and "lr: 0.001 -> 0.01" in extra.stderr
    same = cli("sweep", str(tmp_path / "fx.yaml"), "--runs", runs, "--wandb", "disabled", *TINY_SETS)
    assert same.returncode == 0 and "no runs started" in same.stdout


def test_unsafe_names_and_grid_distributions_exit_2(tmp_path):
    (tmp_path / "name.yaml").write_text(SWEEP.replace("name: fx", "name: ../../escape"))
    out = cli("sweep", str(tmp_path / "name.yaml"), "--runs", str(tmp_path / "runs"))
    assert out.returncode == 2 and "invalid sweep name" in out.stderr
    (tmp_path / "dist.yaml").write_text(SWEEP.replace("{values: [1]}", "{distribution: uniform, min: 1, max: 2}"))
    out = cli("sweep", str(tmp_path / "dist.yaml"), "--runs", str(tmp_path / "runs"))
    assert out.returncode == 2 and "grid search needs" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "escape").exists()
