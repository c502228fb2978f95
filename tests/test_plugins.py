"""Plugins: a user's module registers a component (with its own option) and it works everywhere a
built-in does: train, a multi-seed study in subprocesses, report, resume, W&B tags, generate/eval."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import gptlab
from gptlab.axes import AXES
from gptlab.config import build_config, config_from_dict
from gptlab.errors import ConfigError, UserError
from tests.conftest import TINY, assert_user_error, cli, tiny_args
from tests.test_wandb_fidelity import leet, offline_dirs

PLUGIN = '''
"""A test plugin: ScaleNorm-like norm with one option."""
import math
import torch
from torch import nn
import gptlab


@gptlab.register("norm", "testnorm", options={"testnorm_g": 1.0})
class TestNorm(nn.Module):
    """g * x / ||x|| with one learned scalar g."""

    def __init__(self, cfg):
        super().__init__()
        self.g = nn.Parameter(torch.tensor(cfg.option("testnorm_g") * math.sqrt(cfg.n_embd)))

    def forward(self, x):
        return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(1e-5)
'''


@pytest.fixture(autouse=True, scope="module")
def _registrations_leave_with_this_module():
    """What this module registers in-process (test plugins, the shipped example) is removed when it ends, so a
    test file run after it in the same process (pytest-xdist gives no file order) sees the built-ins only."""
    import copy

    import gptlab.plugins as plugins
    from gptlab.axes import AXES

    saved = {name: (dict(axis._choices), dict(axis._impl._items)) for name, axis in AXES.items()}
    state = {k: copy.copy(v) for k, v in vars(plugins).items()
             if k.startswith("_") and not k.startswith("__") and isinstance(v, (set, dict, list))}
    modules = set(sys.modules)
    yield
    for name in set(sys.modules) - modules:  # plugin modules imported here register again when imported again
        if name in plugins._via_loader or name.startswith(("testplug", "scalenorm", "first", "second", "clash")):
            sys.modules.pop(name, None)
    for name, (choices, items) in saved.items():
        AXES[name]._choices.clear()
        AXES[name]._choices.update(choices)
        AXES[name]._impl._items.clear()
        AXES[name]._impl._items.update(items)
    for k, v in state.items():
        current = getattr(plugins, k)
        current.clear()
        current.update(v) if not isinstance(v, list) else current.extend(v)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "mynorm.py").write_text(PLUGIN)
    return root


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.slow
def test_study_with_a_plugin_runs_in_subprocesses_reports_and_tags_wandb(plugin_dir, tmp_path):
    spec = {"name": "plug", "description": "testnorm vs layernorm",
            "base": {"plugins": ["mynorm"], **TINY, "max_steps": 20},
            "variants": {"layernorm": {"norm": "layernorm"}, "testnorm": {"norm": "testnorm", "testnorm_g": 0.5}},
            "seeds": [0, 1], "compare": {"metric": "val/loss", "goal": "minimize", "baseline": "layernorm"}}
    (plugin_dir / "plug.yaml").write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    # run from the plugin's directory: the current directory is on the plugin import path, in the runner
    # and in every run subprocess it starts
    out = cli("run", "plug.yaml", "--runs", str(runs), "--wandb", "offline", "--jobs", "2", cwd=plugin_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    for variant in ("layernorm", "testnorm"):
        for seed in (0, 1):
            run_dir = runs / "plug" / f"{variant}-seed{seed}"
            assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
            model = load_yaml(run_dir / "config.yaml")["model"]
            assert model["plugins"] == ["mynorm"] and model["norm"] == variant
            assert model["testnorm_g"] == (0.5 if variant == "testnorm" else 1.0)
    # the W&B run is tagged with the plugin component and its option
    tags = [json.loads(line)["run"]["tags"] for line in leet(offline_dirs(runs / "plug" / "testnorm-seed1")[0],
                                                             "--json").splitlines()
            if json.loads(line).get("type") == "run"][0]
    assert "norm=testnorm" in tags and "testnorm_g=0.5" in tags
    # the report reads the store alone (no plugin import needed) and shows the option as a varying key
    reports = tmp_path / "reports"
    out = cli("report", "plug", "--runs", str(runs), "--out", str(reports), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (reports / "plug" / "report.md").read_text()
    assert "testnorm" in text and "testnorm_g" in text
    # generate/eval on a run import the plugins its config.yaml names: found via PYTHONPATH ...
    run_dir = runs / "plug" / "testnorm-seed0"
    out = cli("generate", str(run_dir), "--max-new-tokens", "5", cwd=tmp_path, env={"PYTHONPATH": str(plugin_dir)})
    assert out.returncode == 0, out.stderr
    # ... and without it, one clear line
    out = cli("eval", str(run_dir), cwd=tmp_path, env={"PYTHONPATH": ""})
    assert_user_error(out, "plugins", "mynorm", "PYTHONPATH")


@pytest.mark.slow
def test_an_interrupted_plugin_run_resumes(plugin_dir, tmp_path):
    args = [*tiny_args(max_steps=300, eval_interval=100), "plugins=[mynorm]", "norm=testnorm", "testnorm_g=0.7"]
    run_dir = tmp_path / "adhoc" / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "train", *args, "--runs", str(tmp_path), "--name", "cut",
                             "--wandb", "disabled"], env=env, cwd=plugin_dir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "metrics.jsonl").exists() and len((run_dir / "metrics.jsonl").read_text().splitlines()) > 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    # resumed from elsewhere, the plugin found on PYTHONPATH
    out = cli("train", *args, "--runs", str(tmp_path), "--name", "cut", "--wandb", "disabled", cwd=tmp_path,
              env={"PYTHONPATH": str(plugin_dir)})
    assert out.returncode == 0, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 300
    assert load_yaml(run_dir / "config.yaml")["model"]["testnorm_g"] == 0.7


@pytest.mark.slow  # a real subprocess
def test_unknown_plugin_module_exits_2_with_one_line_and_writes_nothing(plugin_dir):
    out = cli("train", *tiny_args(max_steps=1), "plugins=[no_such_module]", "--runs", str(plugin_dir / "never"),
              "--wandb", "disabled", cwd=plugin_dir)
    assert_user_error(out, "plugins", "no_such_module", "PYTHONPATH")
    assert not (plugin_dir / "never").exists()


def test_bad_plugin_values_are_config_errors(plugin_dir, monkeypatch):
    monkeypatch.chdir(plugin_dir)
    base = {"plugins": ["mynorm"], "norm": "testnorm"}
    with pytest.raises(ConfigError, match="testnorm_g: expected a number, got 'big'"):
        build_config({**base, "testnorm_g": "big"})
    with pytest.raises(ConfigError, match="did you mean 'testnorm'"):
        build_config({**base, "norm": "testnrom"})
    with pytest.raises(ConfigError, match="did you mean 'testnorm_g'"):
        build_config({**base, "testnorm_gg": 1.0})
    with pytest.raises(ConfigError, match="not an importable module name"):
        build_config({"plugins": ["mynorm.py"]})


def test_plugin_component_needs_its_plugin_listed(plugin_dir, monkeypatch):
    monkeypatch.chdir(plugin_dir)
    cfg = build_config({"plugins": ["mynorm"], "norm": "testnorm", "testnorm_g": "0.25"})
    assert cfg.model.option("testnorm_g") == 0.25 and cfg.model.plugins == ("mynorm",)
    assert cfg.to_dict()["model"]["testnorm_g"] == 0.25
    assert config_from_dict(cfg.to_dict()) == cfg          # config.yaml round trip
    assert cfg.replace(testnorm_g=2).model.option("testnorm_g") == 2.0
    with pytest.raises(ConfigError, match="add mynorm to plugins"):
        build_config({"norm": "testnorm"})              # registered in this process, but not listed
    with pytest.raises(ConfigError, match="add mynorm to plugins"):
        build_config({"testnorm_g": 0.5})
    assert "testnorm_g" not in build_config({}).model.options  # other configs do not carry it
    with pytest.raises(ConfigError, match="testnorm_g"):
        build_config({"plugins": "mynorm", "testnorm_g": [1]})
    with pytest.raises(ConfigError, match="not an option"):
        build_config({}).model.option("testnorm_g")


def test_registration_errors_are_user_errors():
    marker = object()
    with pytest.raises(UserError, match="unknown axis 'nrom'.*did you mean 'norm'"):
        gptlab.register("nrom", "x")(marker)
    with pytest.raises(UserError, match="clashes with the built-in config key"):
        gptlab.register("norm", "clash", options={"dropout": 0.1})(marker)
    with pytest.raises(UserError, match="residual takes no plugins"):
        gptlab.register("residual", "rezero")(marker)
    with pytest.raises(UserError, match="registered twice"):
        gptlab.register("norm", "layernorm")(marker)
    with pytest.raises(UserError, match="type list"):
        gptlab.register("norm", "listy", options={"listy_dims": [1, 2]})(marker)
    assert "clash" not in AXES["norm"].names() and "listy" not in AXES["norm"].names()


@pytest.mark.slow  # a real subprocess
def test_a_plugin_registering_a_taken_name_exits_2(tmp_path):
    (tmp_path / "first.py").write_text(PLUGIN)
    (tmp_path / "second.py").write_text(PLUGIN)
    out = cli("train", *tiny_args(max_steps=1), "plugins=[first,second]", "--runs", str(tmp_path / "never"),
              "--wandb", "disabled", cwd=tmp_path)
    assert_user_error(out, "plugins", "second", "testnorm' is registered twice (already by first)")
    assert not (tmp_path / "never").exists()


def test_broken_or_clashing_plugins_are_one_line_config_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_plugin.py").write_text("import gptlab\nraise RuntimeError('half-written\\nplugin')\n")
    with pytest.raises(ConfigError) as err:
        build_config({"plugins": ["broken_plugin"]})
    assert "broken_plugin" in str(err.value) and "RuntimeError" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "clash_plugin.py").write_text(
        "import gptlab\n"
        "gptlab.register('norm', 'clash_a', options={'clash_eps': 1e-5})(lambda cfg: None)\n"
        "gptlab.register('activation', 'clash_b', options={'clash_eps': 1e-6})(lambda cfg: None)\n")
    with pytest.raises(ConfigError, match="option 'clash_eps' of activation 'clash_b' is already declared by "
                                          "clash_plugin"):
        build_config({"plugins": ["clash_plugin"]})


@pytest.mark.slow  # a real subprocess
def test_installed_entry_point_plugins_load_in_every_process(tmp_path):
    dist = tmp_path / "epnorm_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epnorm-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gptlab.plugins]\nepnorm = epnorm\n")
    (tmp_path / "epnorm.py").write_text(PLUGIN.replace("testnorm", "epnorm"))
    code = ("from gptlab.config import build_config\n"
            "c = build_config({'norm': 'epnorm', 'epnorm_g': 2})\n"
            "print(c.model.norm, c.model.option('epnorm_g'), c.model.plugins)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path.parent,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["epnorm", "2.0", "()"]


def test_shipped_example_plugin_and_spec(monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    spec = load_yaml(repo / "examples" / "plugins" / "scalenorm.yaml")
    cfg = build_config({**spec["base"], **spec["variants"]["scalenorm_g0.5"]})
    assert cfg.model.norm == "scalenorm" and cfg.model.option("scalenorm_g") == 0.5
    model = gptlab.build_model({**cfg.model.values(), "vocab_size": 11, "n_layer": 1, "n_embd": 16, "n_head": 2})
    import torch
    norm = model.blocks[0].norm_1
    assert float(norm.g.detach()) == pytest.approx(0.5 * 4.0)
    x = torch.randn(3, 16)
    torch.testing.assert_close(norm(x), norm.g * x / x.norm(dim=-1, keepdim=True))


@pytest.mark.slow
def test_a_wandb_sweep_over_a_plugin_option(plugin_dir, tmp_path):
    """`plugins` as a fixed sweep parameter, the plugin's option as a searched one: W&B's engine and the
    `gptlab train ${args}` runs (as `wandb agent` starts them) accept both."""
    (tmp_path / "mynorm.py").write_text(PLUGIN)
    sweep = tmp_path / "plug_sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "plug_sweep", "method": "grid", "command": ["${env}", "gptlab", "train", "${args}"],
        "metric": {"name": "best_val_loss", "goal": "minimize"},
        "parameters": {"plugins": {"value": ["mynorm"]}, "norm": {"value": "testnorm"},
                       "testnorm_g": {"values": [0.5, 2.0]},
                       **{k: {"value": v} for k, v in {**TINY, "max_steps": 10}.items()}}}))
    out = cli("sweep", str(sweep), "--jobs", "2", "--wandb", "disabled", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    gains = sorted(load_yaml(d / "config.yaml")["model"]["testnorm_g"] for d in (tmp_path / "runs" / "plug_sweep").iterdir()
                   if (d / "config.yaml").is_file())
    assert gains == [0.5, 2.0]
