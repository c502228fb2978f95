"""A study design's spec errors (tune:, adaptive seeds:, scale:) through the real CLI: each is one line on stderr
naming the spec file and the key, exit code 2, and nothing is written (the runs directory is never created).

Every spec is checked by its own `python -m gptlab run SPEC --runs DIR` subprocess; they are started together
(a spec error stops before torch is imported, so each costs a fraction of a second)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_user_error

# one step: a case that wrongly passed validation would cost little before its assertion fails
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 8, "max_steps": 1,
        "eval_interval": 1, "eval_steps": 1, "dropout": 0.0, "wandb": "disabled"}
TWO = {"a": {"norm_placement": "pre"}, "b": {"norm_placement": "post"}}
LRS = [1.0e-3, 1.0e-2]


def spec(**parts) -> dict:
    """A valid two-variant study, changed by `parts` (a part set to None is dropped)."""
    body = {"name": "bad", "base": dict(TINY), "variants": TWO, "seeds": [0, 1], "compare": {"baseline": "a"},
            **parts}
    return {k: v for k, v in body.items() if v is not None}


# case -> (spec, words its one stderr line must hold besides the spec file's path[, extra CLI arguments])
CASES = {
    "tuning seeds among comparison seeds": (spec(tune={"lr": LRS, "seeds": [1]}), ["tune.seeds", "[1]"]),
    "tuning seeds among adaptive seeds": (spec(seeds={"start": 3, "max": 5, "step": 2},
                                               tune={"lr": LRS, "seeds": [4, 100]}), ["tune.seeds", "[4]"]),
    "unknown tuned key": (spec(tune={"lrr": LRS}), ["lrr"]),
    "empty tuned list": (spec(tune={"lr": []}), ["tune.lr", "empty"]),
    "model shape tuned": (spec(tune={"n_layer": [1, 2]}), ["n_layer", "cannot be tuned"]),
    "ablation switch tuned": (spec(tune={"norm_placement": ["pre", "post"]}), ["norm_placement", "cannot be tuned"]),
    "list value tuned": (spec(tune={"lr": [[1.0e-3], 1.0e-2]}), ["tune.lr", "scalars"]),
    "tuned key given one value": (spec(tune={"lr": 1.0e-3}), ["tune.lr", "list"]),
    "adaptive start above max": (spec(seeds={"start": 5, "max": 3, "step": 1}), ["seeds.max", "start"]),
    "adaptive step 0": (spec(seeds={"start": 3, "max": 5, "step": 0}), ["seeds.step"]),
    "seeds a string": (spec(seeds="three"), ["seeds", "list"]),
    "seeds a float": (spec(seeds=3.5), ["seeds", "list"]),
    "size that changes nothing": (spec(scale={"s": {}, "m": {"n_layer": 2}}), ["scale.s", "changes nothing"]),
    "size that sets no shape": (spec(scale={"s": {"max_steps": 2}, "m": {"n_layer": 2}}),
                                ["scale.s", "no model shape"]),
    "sizes of one parameter count": (spec(scale={"h1": {"n_head": 1}, "h4": {"n_head": 4}}),
                                     ["h1", "h4", "parameter count"]),
    "predict with two sizes": (spec(scale={"s": {"n_layer": 2}, "m": {"n_layer": 3},
                                           "predict": {"n_params": 1.0e7}}), ["scale.predict", "3 sizes"]),
    "unknown key in a size": (spec(scale={"s": {"n_layr": 2}, "m": {"n_layer": 3}}), ["n_layr"]),
    "variant named null": (spec(variants={None: {}, "a": {"norm_placement": "pre"}}), ["variants", "'null'"]),
    # the key named, and the fix
    "tuned key also in the grid": (spec(tune={"lr": LRS, "seeds": [100]}, grid={"lr": LRS}),
                                   ["grid.lr", "both tuned and in the grid", "tune it or grid it, not both"]),
    "tuned key also in --set": (spec(tune={"lr": LRS, "seeds": [100]}), ["--set", "lr", "tuned by the spec's tune:"],
                                ("--set", "lr=0.01")),
    "adaptive seeds without a baseline": (spec(seeds={"start": 3, "max": 5, "step": 2}, compare=None),
                                          ["compare", "names none", "baseline"]),
    "adaptive seeds with margin 0": (spec(seeds={"start": 3, "max": 5, "step": 2},
                                         compare={"baseline": "a", "margin": 0}),
                                    ["compare.margin", "+-0", "positive margin"]),
    "adaptive start below 2": (spec(seeds={"start": 1, "max": 5, "step": 2}),
                               ["seeds.start", "at least 2", "two seeds a side"]),
    "scale with one size": (spec(scale={"s": {"n_layer": 2}}), ["scale", "at least two sizes", "add a size"]),
    "tokens_per_param and a size's max_steps": (
        spec(scale={"s": {"n_layer": 2, "max_steps": 5}, "m": {"n_layer": 3}, "tokens_per_param": 20}),
        ["scale.tokens_per_param", "a size also sets it", "drop max_steps from the sizes or drop tokens_per_param"]),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path, Path]]:
    """Every case's CLI run, all started at once: case -> (result, spec file, runs dir)."""
    root = tmp_path_factory.mktemp("bad_specs")
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = {}
    for i, (case, (body, _, *args)) in enumerate(CASES.items()):
        path, runs = root / f"case{i}.yaml", root / f"runs{i}"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        argv = [sys.executable, "-m", "gptlab", "run", str(path), "--runs", str(runs), *(args[0] if args else ())]
        proc = subprocess.Popen(argv, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[case] = (proc, path, runs)
    out = {}
    for case, (proc, path, runs) in started.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[case] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), path, runs)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_study_design_is_one_line_exit_2_and_writes_nothing(outcomes, case):
    result, path, runs = outcomes[case]
    assert_user_error(result, str(path), *CASES[case][1])
    assert not runs.exists(), f"{case}: {runs} was written"
    assert result.stdout == "", result.stdout


def test_the_valid_spec_the_cases_start_from_is_valid(tmp_path):
    """The cases fail for their own change, not for something wrong in the spec they share."""
    from gptlab.runner.spec import load_spec

    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(spec(tune={"lr": LRS, "seeds": [100]}, seeds={"start": 3, "max": 5, "step": 2},
                                        scale={"s": {"n_layer": 2}, "m": {"n_layer": 3}, "l": {"n_layer": 4},
                                               "predict": {"n_params": 1.0e7}})))
    loaded = load_spec(path)
    assert [c.size for c in loaded.cells] == ["s", "m", "l", "s", "m", "l"]
    assert loaded.tune.seeds == (100,) and loaded.seeds.looks() == [3, 5]


def test_tokens_per_param_sets_each_sizes_max_steps(tmp_path):
    """`scale.tokens_per_param: T` trains each size T tokens per parameter: max_steps = round(T x N / tokens per
    step), N counted here from the built model's parameters (tied weights once); a size without it keeps base's."""
    import torch

    from gptlab.dataset import load_data
    from gptlab.model import build_model
    from gptlab.runner.spec import load_spec

    sizes = {"s": {"n_layer": 1}, "m": {"n_layer": 2}, "l": {"n_layer": 3}}
    path = tmp_path / "tpp.yaml"
    path.write_text(yaml.safe_dump(spec(scale={**sizes, "tokens_per_param": 0.5}, variants=None, compare=None)))
    runs = load_spec(path).runs
    vocab = load_data(runs[0].config.data, runs[0].config.model.block_size).tokenizer.vocab_size
    steps = {}
    for run in runs:
        model = build_model(run.config.replace(vocab_size=vocab).model)
        n = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        t = run.config.train
        assert t.max_steps == round(0.5 * n / (t.batch_size * run.config.model.block_size * t.grad_accum)), run.name
        steps[run.study["size"]] = t.max_steps
    assert steps["s"] < steps["m"] < steps["l"] and steps["s"] != TINY["max_steps"]
    path.write_text(yaml.safe_dump(spec(scale=sizes, variants=None, compare=None)))
    assert {run.config.train.max_steps for run in load_spec(path).runs} == {TINY["max_steps"]}
