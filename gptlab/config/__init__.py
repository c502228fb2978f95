"""Typed, frozen run configuration: four sections whose leaf names are unique across sections.

  sections.py  the section dataclasses (model, train, data, log) and the key -> section map
  check.py     field checks: type coercion, choices, axis values, plugin options
  run.py       RunConfig and its builders (overrides, saved config.yaml)
  table.py     the README's config table
"""
from gptlab.config.check import (_check_axis, _check_options, _check_types, _coerce, _number,  # noqa: F401
                                 _require, _type_name, _yaml11_word)
from gptlab.config.run import (RunConfig, build_config, config_from_dict, default_n_head, flatten_overrides,
                               import_plugins)
from gptlab.config.sections import (BUILTIN_KEYS, KEY_SECTION, SECTIONS, DataConfig, LogConfig, ModelConfig,
                                    TrainConfig, settable, spelled_choice)
from gptlab.config.table import _doc_value, config_table  # noqa: F401

__all__ = ["BUILTIN_KEYS", "KEY_SECTION", "SECTIONS", "DataConfig", "LogConfig", "ModelConfig", "RunConfig",
           "TrainConfig", "build_config", "config_from_dict", "config_table", "default_n_head",
           "flatten_overrides", "import_plugins", "settable", "spelled_choice"]
