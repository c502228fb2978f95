"""typer's conventions, through CliRunner on gptlab.cli.app: --version, completion, help that shows the
arguments and every config key, --print-config that writes nothing, real choices, one meaning per option."""
from __future__ import annotations

import io
import os
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gptlab.cli.app import app
from gptlab.config import KEY_SECTION, build_config
from gptlab.runner.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def gptlab(*args: str, cwd: Path | None = None):
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "WANDB_MODE": "disabled"})
    finally:
        os.chdir(old)


def test_version_and_completion() -> None:
    out = gptlab("--version")
    assert out.exit_code == 0 and out.stdout.strip() == f"gptlab {version('gptlab')}"
    top = gptlab("--help")
    assert "--install-completion" in top.stdout and "--show-completion" in top.stdout and "sync" in top.stdout


def test_train_help_shows_arguments_and_every_config_key() -> None:
    from gptlab.axes import AXES

    out = gptlab("train", "--help")
    assert out.exit_code == 0
    assert "train [OPTIONS] [CONFIG.yaml] [OVERRIDE ...]" in out.stdout
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()}
    for key in set(KEY_SECTION) - {"vocab_size"}:
        assert key in rows, key
        assert rows[key][1] == KEY_SECTION[key]
    assert rows["n_layer"][2] == str(build_config({}).model.n_layer)
    assert rows["pos_encoding"][3] == "|".join(AXES["pos_encoding"].names())
    assert rows["wandb"][3] == "auto|online|offline|disabled"


def test_train_print_config_writes_nothing(tmp_path: Path) -> None:
    out = gptlab("train", "n_layer=2", "--lr=3e-4", "--print-config", cwd=tmp_path)
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("# runs/adhoc/n_layer=2-lr=0.0003\n")
    assert yaml.safe_load(out.stdout) == build_config({"n_layer": 2, "lr": 3e-4}).to_dict()
    assert list(tmp_path.iterdir()) == []


def test_run_and_sweep_print_config(tmp_path: Path) -> None:
    spec = REPO / "experiments" / "lr_sweep.yaml"
    out = gptlab("run", str(spec), "--set", "max_steps=10", "--print-config", cwd=tmp_path)
    assert out.exit_code == 0, out.output
    planned = load_spec(spec, {"max_steps": 10}).runs
    blocks = out.stdout.split("# runs/")[1:]
    assert len(blocks) == len(planned)
    for block, run in zip(blocks, planned):
        assert block.startswith(f"lr_sweep/{run.name}\n")
        assert yaml.safe_load(block.split("\n", 1)[1]) == run.config.to_dict()
    out = gptlab("sweep", str(REPO / "sweeps" / "depth_vs_width.yaml"), "--set", "max_steps=10", "--print-config",
                 cwd=tmp_path)
    assert out.exit_code == 0, out.output
    parts = out.stdout.split("\n# runs/")
    sweep = yaml.safe_load(parts[0])
    assert sweep["parameters"]["max_steps"] == {"value": 10}
    assert yaml.safe_load(parts[1].split("\n", 1)[1])["model"]["n_head"] == 4
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [("run", "experiments/smoke.yaml", "--launcher", "submitt", "--dry-run"),
                                  ("run", "experiments/smoke.yaml", "--rerun", "some", "--dry-run"),
                                  ("train", "--wandb", "bogus", "--print-config"),
                                  ("report", "--wandb", "team/proj")])
def test_choices_and_option_names_are_checked(args: tuple[str, ...]) -> None:
    out = gptlab(*args, cwd=REPO)
    assert out.exit_code == 2, out.output
    shown = gptlab(args[0], "--help", cwd=REPO).stdout
    assert "local|submitit" in shown or "failed|all" in shown or "auto|online|offline|disabled" in shown or \
        "--wandb-project" in shown


def test_report_takes_its_w_and_b_project_as_wandb_project(tmp_path: Path) -> None:
    out = gptlab("report", "--runs", str(tmp_path), "--wandb-project", "no-slash")
    assert out.exit_code == 2 and "--wandb-project" in out.stderr and "ENTITY/PROJECT" in out.stderr


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_plain_lines_elsewhere() -> None:
    from gptlab.train.progress import ProgressPrinter

    rows = [{"step": 5, "train/loss": 3.0, "lr": 1e-3}, {"step": 10, "train/loss": 2.5, "val/loss": 2.6, "lr": 1e-3}]
    plain, log = io.StringIO(), io.StringIO()
    printer = ProgressPrinter("r", 10, stream=plain, log_file=log)
    for row in rows:
        printer.update(row, 0.0)
    printer.close()
    assert plain.getvalue() == "r step 10/10 | loss 2.5000 | val 2.6000 | lr 1.00e-03 | eta 0:00\n"
    assert log.getvalue().count("\n") == 2  # every logged step in train.log
    tty = Tty()
    printer = ProgressPrinter("r", 10, stream=tty)
    for row in rows:
        printer.update(row, 0.0)
    printer.close()
    shown = tty.getvalue()
    assert "10/10" in shown and "━" in shown and "\x1b[" in shown  # rich's bar, drawn in place
    assert "r step 10/10 | loss 2.5000 | val 2.6000" in shown


def test_help_and_completion_do_not_import_torch() -> None:
    """Shell completion runs the program on every TAB: the CLI's import stays light."""
    import subprocess
    import sys

    code = "import sys; from gptlab.cli.app import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shell_completion_offers_the_store_s_experiments(tmp_path: Path) -> None:
    import subprocess
    import sys

    for name in ("alpha", "beta", "other"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    env = {**os.environ, "_GPTLAB_COMPLETE": "complete_bash", "COMP_WORDS": "gptlab sync ", "COMP_CWORD": "2"}
    exe = str(Path(sys.executable).parent / "gptlab")
    out = subprocess.run([exe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["alpha", "beta", "other"]
    env.update(COMP_WORDS="gptlab report a")
    out = subprocess.run([exe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["alpha"]


def test_one_meaning_per_option_name() -> None:
    """An option name means the same on every command: --wandb is always a W&B mode from the config's choices,
    --runs always the run store, --dry-run always a flag."""
    import typing

    import typer

    from gptlab.cli.config_help import choices_of

    group = typer.main.get_command(app)
    seen: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        for param in command.params:
            for opt in param.opts:
                annotation = param.type_descriptor.annotation
                seen.setdefault(opt, set()).add(f"{annotation}|flag={getattr(param, 'is_flag', None)}")
                if opt == "--wandb":
                    assert typing.get_args(annotation) == tuple(choices_of("log", "wandb")), name
    for opt in ("--wandb", "--runs", "--dry-run", "--set", "--print-config"):
        assert len(seen[opt]) == 1, (opt, seen[opt])
    assert sum("--wandb" in c.params[i].opts for c in group.commands.values() for i in range(len(c.params))) >= 3
