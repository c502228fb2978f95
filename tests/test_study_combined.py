"""Study designs together, for real (tiny models, real training): `tune:` with adaptive seeds, and `tune:` with
`scale:`. Each trains its tuning stage first; every comparison run then trains at the value its own cell chose
(tuning.json), the adaptive rounds are those the store replays, and the report is written."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.study_runs import ENV, TINY, gptlab_run, status

pytestmark = pytest.mark.slow
LRS = [1.0e-2, 1.0e-1]
BASE = {**TINY, "max_steps": 12, "eval_interval": 6, "log_interval": 6}


def study(tmp_path: Path, body: dict) -> tuple[Path, Path, dict]:
    """Run the spec to its end and report it: (experiment folder, report folder, tuning.json)."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    out = gptlab_run(path, tmp_path / "runs", "--pack", "auto")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "gptlab", "report", body["name"], "--runs", str(tmp_path / "runs"),
                             "--out", str(tmp_path / "reports")], env=ENV, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    exp = tmp_path / "runs" / body["name"]
    return exp, tmp_path / "reports" / body["name"], json.loads((exp / "tuning.json").read_text())


def meta(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def compared_at_their_choice(exp: Path, tuning: dict) -> list[str]:
    """Every comparison run finished at its cell's chosen lr; their names."""
    names = []
    for d in sorted(p for p in exp.iterdir() if p.is_dir()):
        config = meta(d)
        if config["run"]["stage"] != "compare":
            continue
        cell = d.name.rsplit("-seed", 1)[0]
        assert status(d) == "finished", d.name
        assert config["train"]["lr"] == tuning["cells"][cell]["chosen"]["lr"], (d.name, tuning["cells"][cell])
        names.append(d.name)
    return names


def test_tune_with_adaptive_seeds(tmp_path):
    from gptlab.runner.spec import load_spec
    from gptlab.study.adaptive import replay_store

    body = {"name": "ta", "base": BASE, "variants": {"a": {}, "b": {"norm_placement": "post"}},
            "seeds": {"start": 2, "max": 4, "step": 2}, "tune": {"lr": LRS, "seeds": [100]},
            "compare": {"baseline": "a", "margin": 0.05}}
    exp, reports, tuning = study(tmp_path, body)
    assert sorted(tuning["cells"]) == ["a", "b"]
    names = compared_at_their_choice(exp, tuning)
    chosen = {cell: tuning["cells"][cell]["chosen"] for cell in tuning["cells"]}
    state = replay_store(load_spec(tmp_path / "spec.yaml"), tmp_path / "runs", chosen)
    assert state.complete
    outcome = state.outcomes["b"]
    want = {f"{cell}-seed{s}" for cell in ("a", "b") for s in range(outcome.result.n)}
    assert set(names) == want, (names, outcome)  # the rounds the replay says were run, at the tuned values
    text = (reports / "report.md").read_text()
    assert "## Tuning" in text and "## Design: adaptive seeds" in text


def test_tune_with_scale(tmp_path):
    body = {"name": "ts", "base": BASE, "variants": {"a": {}, "b": {"norm_placement": "post"}},
            "scale": {"s": {"n_layer": 1, "n_embd": 16}, "l": {"n_layer": 2, "n_embd": 32}},
            "seeds": [0, 1], "tune": {"lr": LRS, "seeds": [100]}, "compare": {"baseline": "a"}}
    exp, reports, tuning = study(tmp_path, body)
    cells = {f"{v}-size={s}" for v in ("a", "b") for s in ("s", "l")}
    assert set(tuning["cells"]) == cells  # each variant tuned at each size
    names = compared_at_their_choice(exp, tuning)
    assert sorted(names) == sorted(f"{c}-seed{s}" for c in cells for s in (0, 1))
    for name in names:
        assert meta(exp / name)["run"]["size"] == name.split("size=")[1].split("-")[0]
    text = (reports / "report.md").read_text()
    assert "## Tuning" in text and "## Scale" in text
