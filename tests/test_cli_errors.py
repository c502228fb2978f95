"""Bad input: one clear line on stderr naming the file/key and the fix, exit code 2, nothing written."""
import pytest

from tests.conftest import assert_user_error, cli, tiny_args


@pytest.mark.parametrize("override,needles", [
    ("n_layers=2", ("n_layers", "did you mean 'n_layer'")),
    ("max_steps=many", ("max_steps", "integer")),
    ("norm=batchnorm", ("norm", "layernorm, rmsnorm, none")),
    ("n_head=5", ("n_embd", "divisible")),
    ("pos_encoding=rope", ("pos_encoding", "even head size")),
    ("block_size=100000000", ("block_size", "larger than the data")),
    ("data.path=/nonexistent/text.txt", ("data.path", "not found")),
])
def test_bad_overrides(tmp_path, override, needles):
    args = tiny_args(n_embd=12, n_head=4) if override.startswith("pos_encoding") else tiny_args()
    out = cli("train", *args, override, "--runs", str(tmp_path / "runs"), "--wandb", "disabled")
    assert_user_error(out, *needles)
    assert not (tmp_path / "runs").exists()


def test_empty_data_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = cli("train", *tiny_args(), f"data.path={empty}", "--runs", str(tmp_path / "runs"))
    assert_user_error(out, "empty")
    assert not (tmp_path / "runs").exists()


def test_bad_config_file_names_file_and_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  n_layer: 2\ntrain:\n  lr: fast\n")
    out = cli("train", str(config), "--runs", str(tmp_path / "runs"))
    assert_user_error(out, f"{config}:4", "lr", "number")
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("model: {n_layer: 2\n")
    assert_user_error(cli("train", str(malformed), "--runs", str(tmp_path / "runs")), str(malformed), "YAML")
    assert_user_error(cli("train", str(tmp_path / "missing.yaml")), "missing.yaml", "not found")
    assert not (tmp_path / "runs").exists()


def test_generate_on_a_missing_run(tmp_path):
    assert_user_error(cli("generate", str(tmp_path / "nope")), "no checkpoint")


@pytest.mark.parametrize("args,needles", [
    (("run", "experiments/smoke.yaml", "--launcher", "submitt"), ("gptlab run", "--launcher", "submitit")),
    (("nosuch",), ("No such command 'nosuch'", "gptlab --help")),
    (("run",), ("gptlab run", "spec")),
    (("report", "--no-such-option"), ("gptlab report", "--no-such-option")),
    (("report", "--runs"), ("gptlab report", "'--runs' requires an argument")),
    (("diagnostics", "--bogus"), ("No such command 'diagnostics'",)),
])
def test_usage_errors_click_finds_are_one_line_too(tmp_path, args, needles):
    """An unknown option or command, a misspelt choice or a missing argument: the console entry point
    prints click's message as one line (not typer's boxed panel), exit code 2, nothing written."""
    from tests.conftest import REPO

    out = cli(*args, cwd=REPO if args[0] == "run" else tmp_path)
    assert_user_error(out, *needles)
    assert list(tmp_path.iterdir()) == []


def test_a_bare_command_still_shows_its_help():
    out = cli()
    shown = out.stdout + out.stderr
    # exit code 2 with click >= 8.2 (typer's own click included), 0 with older clicks
    assert out.returncode in (0, 2) and "Usage:" in shown and "train" in shown and "sweep" in shown
