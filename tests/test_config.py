"""Config: typed frozen sections, override syntaxes, validation with a named key and a fix."""
import dataclasses

import pytest

from gptlab.config import RunConfig, build_config, config_from_dict, flatten_overrides
from gptlab.errors import ConfigError, UserError
from gptlab.overrides import load_config_file, parse_overrides, resolve, run_name


def test_defaults_are_the_baby_gpt_recipe():
    c = RunConfig()
    assert (c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.block_size) == (6, 6, 384, 256)
    assert (c.model.dropout, c.train.lr, c.train.max_steps, c.train.batch_size) == (0.2, 1e-3, 5000, 64)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().train.lr = 1.0


@pytest.mark.parametrize("args", [["lr=3e-4"], ["train.lr=3e-4"], ["--lr=3e-4"], ["--train.lr=3e-4"], ["--lr", "3e-4"]])
def test_every_override_syntax_means_the_same(args):
    cfg, _ = resolve(None, parse_overrides(args))
    assert cfg.train.lr == pytest.approx(3e-4)


def test_values_parse_as_yaml_scalars():
    parsed = parse_overrides(["residual=false", "pos_encoding=rope", "max_steps=10", "lr=1e-3", "entity=null"])
    assert parsed == {"residual": False, "pos_encoding": "rope", "max_steps": 10, "lr": 1e-3, "entity": None}


def test_types_are_coerced_or_rejected():
    assert build_config({"lr": 1, "max_steps": "20"}).train.lr == 1.0
    assert build_config({"max_steps": "20"}).train.max_steps == 20
    with pytest.raises(ConfigError, match="integer"):
        build_config({"max_steps": 2.5})
    with pytest.raises(ConfigError, match="boolean"):
        build_config({"residual": "sometimes"})


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError) as err:
        build_config(flatten_overrides({"n_layers": 2}))
    assert "did you mean 'n_layer'" in err.value.one_line()


def test_key_in_wrong_section_names_the_right_one():
    with pytest.raises(ConfigError, match="model.n_layer"):
        flatten_overrides({"train": {"n_layer": 2}})


def test_cross_field_checks_happen_at_construction():
    with pytest.raises(ConfigError, match="divisible"):
        build_config({"n_embd": 64, "n_head": 6})
    with pytest.raises(ConfigError, match="even head size"):
        build_config({"n_embd": 12, "n_head": 4, "pos_encoding": "rope"})


def test_n_head_follows_n_embd_only_when_not_given():
    assert build_config({"n_embd": 64}).model.n_head == 4
    assert build_config({"n_embd": 384}).model.n_head == 6
    assert build_config({"n_embd": 64, "n_head": 2}).model.n_head == 2


def test_saved_config_round_trips():
    cfg = build_config({"n_layer": 2, "lr": 3e-4}).replace(vocab_size=65)
    assert config_from_dict(cfg.to_dict()) == cfg


def test_config_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  n_layer: 2\n  norm: batchnorm\n")
    with pytest.raises(UserError) as err:
        load_config_file(path)
    assert err.value.one_line().startswith(f"{path}:3: norm: invalid choice")


def test_run_name_is_derived_from_overrides():
    assert run_name({"n_layer": 2, "lr": 1e-3}) == "n_layer=2-lr=0.001"
    assert run_name({}) == "defaults"


def test_a_config_saved_before_the_block_init_and_plugins_keys_loads_with_their_defaults():
    saved = RunConfig().to_dict()
    for key in ("block", "init", "plugins"):
        del saved["model"][key]
    cfg = config_from_dict(saved)
    assert (cfg.model.block, cfg.model.init, cfg.model.plugins) == ("sequential", "nanogpt", ())
    assert cfg == RunConfig()


@pytest.mark.parametrize("value", ["[]", "", None, []])
def test_an_empty_plugins_value_means_none(value):
    assert build_config({"plugins": value}).model.plugins == ()


def test_plugins_accept_the_forms_overrides_and_wandb_send():
    assert build_config({"plugins": "[json, 'textwrap']"}).model.plugins == ("json", "textwrap")
    assert build_config({"plugins": "json,textwrap"}).model.plugins == ("json", "textwrap")
    assert parse_overrides(["--plugins=['json']"]) == {"plugins": "['json']"}
    cfg = build_config(flatten_overrides(parse_overrides(["--plugins=['json']"])))
    assert cfg.model.plugins == ("json",) and cfg.to_dict()["model"]["plugins"] == ["json"]
    with pytest.raises(ConfigError, match="plugins: expected a list of module names"):
        build_config({"plugins": 3})


def test_switch_axes_stay_booleans_and_parse_like_them():
    assert build_config({"residual": "false", "tie_weights": "True"}).model.residual is False
    with pytest.raises(ConfigError, match="residual: expected a boolean"):
        build_config({"residual": 1})


def test_configs_stay_hashable_and_frozen():
    cfg = build_config({"block": "parallel"})
    assert hash(cfg.model) == hash(build_config({"block": "parallel"}).model)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.block = "sequential"


def test_yaml_boolean_words_mean_the_choice_they_spell(tmp_path):
    """PyYAML reads `off` as False (YAML 1.1): `diagnostics=off` on the command line and `diagnostics: off`
    in a file both mean the choice "off", not an invalid False."""
    cfg, _ = resolve(None, parse_overrides(["diagnostics=off"]))
    assert cfg.log.diagnostics == "off"
    assert parse_overrides(["diagnostics=off"]) == {"diagnostics": "off"}  # names and records say "off" too
    assert run_name({"diagnostics": False}) == run_name({"diagnostics": "off"}) == "diagnostics=off"
    path = tmp_path / "c.yaml"
    path.write_text("log:\n  diagnostics: off\n")
    assert load_config_file(path) == {"diagnostics": False}  # as YAML read it; the config maps it
    cfg, _ = resolve(str(path), {})
    assert cfg.log.diagnostics == "off"
    with pytest.raises(ConfigError, match="invalid choice 'True'"):  # no choice is spelled like True
        build_config({"diagnostics": True})
    assert build_config({"compile": False}).train.compile is False  # a real boolean choice stays one
