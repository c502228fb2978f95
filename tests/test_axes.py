"""One declaration per axis (gptlab/axes.py): everything derived from it agrees with it."""
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import gptlab.model  # noqa: F401 - registers the built-in implementations
from gptlab.report.figures import diagnostics as diag_figures
from gptlab.axes import AXES, BUILTIN, ablation_keys, axes_table, figure_axes
from gptlab.config import ModelConfig, RunConfig, build_config, config_table
from gptlab.errors import ConfigError
from gptlab.model import build_model
from gptlab.model.block import ParallelBlock
from tests.conftest import assert_user_error, cli

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = lambda origin: False  # noqa: E731 - built-in choices only


def test_every_axis_is_a_config_field_and_every_axis_field_is_declared():
    fields = {f.name for f in ModelConfig.__dataclass_fields__.values() if "axis" in f.metadata}
    assert fields == set(AXES) == set(ablation_keys())
    for name, axis in AXES.items():
        assert getattr(ModelConfig(), name) == axis.default


def test_declared_values_and_model_implementations_agree():
    for name, axis in AXES.items():
        if axis.implemented:
            assert sorted(axis.implementations()) == sorted(axis.names()), name  # plugins' included
        else:
            assert axis.implementations() == [], name


@pytest.mark.parametrize("axis", list(AXES))
def test_config_accepts_every_declared_value_and_suggests_the_closest(axis):
    for value in AXES[axis].values(BUILTINS):
        other = {"norm_placement": "pre"} if axis == "block" else {}
        assert getattr(build_config({axis: value, **other}).model, axis) == value
    if not AXES[axis].boolean:
        typo = AXES[axis].names()[-1] + "x"
        with pytest.raises(ConfigError, match=f"did you mean '{AXES[axis].names()[-1]}'"):
            build_config({axis: typo})


def test_wandb_tags_name_every_axis():
    tags = RunConfig().model.tags()
    assert [t.split("=")[0] for t in tags] == list(AXES)
    cfg = build_config({"norm": "rmsnorm", "block": "parallel", "init": "xavier"}).model
    assert {"norm=rmsnorm", "block=parallel", "init=xavier", "residual=True"} <= set(cfg.tags())
    import gptlab.train.trainer as trainer
    assert not hasattr(trainer, "TAG_KEYS") and "cfg.model.tags()" in inspect.getsource(trainer)


def test_report_figures_select_on_the_declared_axes():
    for figure, keys in diag_figures.RELEVANT.items():
        assert keys & set(AXES) == figure_axes(figure), figure
    assert {"block", "init", "norm_placement"} <= diag_figures.RELEVANT["grad_norm_by_layer"]


def test_no_module_outside_the_declarations_spells_a_component_name():
    """Per-value cases belong in the declaration (traits), not in `if activation == "swiglu"` elsewhere."""
    pattern = re.compile(r"""\.(%s)\s*(==|!=|not in|in)\s""" % "|".join(AXES))
    allowed = {"gptlab/axes.py", "gptlab/config/sections.py"}
    hits = []
    for path in sorted((ROOT / "gptlab").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed or rel.startswith("gptlab/model/"):
            continue
        hits += [f"{rel}: {line.strip()}" for line in path.read_text().splitlines() if pattern.search(line)]
    assert hits == []


def test_memory_estimate_counts_the_gated_mlp_from_its_trait():
    from gptlab.diagnostics.memory import estimate_mb
    from gptlab.train.device import resolve_runtime

    base = dict(n_layer=2, n_embd=48, n_head=4, block_size=32, dropout=0.0, device="cpu", dtype="float32")
    rt = resolve_runtime(build_config(base).train)
    cfgs = {a: build_config({**base, "activation": a, "vocab_size": 65}) for a in ("gelu", "swiglu")}
    gelu, swiglu = (estimate_mb(cfgs[a], 1000, 8, rt) for a in ("gelu", "swiglu"))
    m = cfgs["swiglu"].model
    extra = 4 * 8 * 32 * 2 * (3 * m.mlp_hidden - 2 * cfgs["gelu"].model.mlp_hidden) / 2**20
    assert swiglu - gelu == pytest.approx(extra)


def _generated(text: str, marker: str) -> str:
    match = re.search(rf"<!-- {marker}:[^\n]*-->\n(.*?)\n<!-- /{marker} -->", text, re.S)
    assert match, f"README.md lost its {marker} markers"
    return match.group(1)


def test_readme_tables_are_the_generated_ones():
    readme = (ROOT / "README.md").read_text()
    assert _generated(readme, "config-table") == config_table()
    assert _generated(readme, "axes-table") == axes_table()
    for name, axis in AXES.items():
        assert f"`{name}`" in config_table() and all(f"`{c}`" in axes_table() for c in axis.names(BUILTINS))


def test_every_builtin_choice_cites_a_source_or_is_an_ablation_off_switch():
    for axis in AXES.values():
        for choice in axis.choices(BUILTINS):
            assert choice.origin == BUILTIN and choice.summary
            assert choice.source or choice.name in ("none", "false", "unscaled"), (axis.name, choice.name)


def test_importing_the_declarations_and_config_leaves_torch_out():
    code = "import sys, gptlab.axes, gptlab.config, gptlab.plugins, gptlab.analysis; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- the block axis ------------------------------------------------------------------------------

def test_parallel_block_is_x_plus_attn_plus_mlp_of_one_shared_norm():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0, block="parallel")
    block = ParallelBlock(cfg).eval()
    assert sum(isinstance(m, nn.LayerNorm) for m in block.modules()) == 1
    x = torch.randn(2, 8, 16)
    h = nn.functional.layer_norm(x, (16,), block.norm.weight, None, 1e-5)
    torch.testing.assert_close(block(x), x + block.attn(h) + block.mlp(h))
    nores = ParallelBlock(ModelConfig(**{**cfg.values(), "residual": False})).eval()
    nores.load_state_dict(block.state_dict())
    torch.testing.assert_close(nores(x), block(x) - x)
    model = build_model(cfg)
    assert isinstance(model.blocks[0], ParallelBlock) and not isinstance(model.norm_f, nn.Identity)


@pytest.mark.slow
def test_parallel_with_post_norm_is_refused_naming_both_keys():
    with pytest.raises(ConfigError) as err:
        build_config({"block": "parallel", "norm_placement": "post"})
    assert "block" in str(err.value) and "norm_placement" in str(err.value)
    out = cli("train", "block=parallel", "norm_placement=post", "max_steps=1", "--wandb", "disabled")
    assert_user_error(out, "block", "norm_placement")
