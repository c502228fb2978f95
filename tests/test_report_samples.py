"""A study of real tiny runs trained on the CPU: its report shows a text sample per variant, taken from
the best seed's checkpoint, says so when a checkpoint is missing, and is byte-identical when re-run."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import TINY, cli


@pytest.mark.slow
def test_real_study_report_has_samples(tmp_path: Path) -> None:
    spec = {"name": "tiny", "description": "Does rope beat learned positions on a tiny GPT?",
            "base": {**TINY, "max_steps": 20}, "variants": {"learned": {"pos_encoding": "learned"},
                                                            "rope": {"pos_encoding": "rope"}},
            "seeds": [0, 1], "compare": {"metric": "val/loss", "baseline": "learned", "margin": 0.05}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    runs, out = tmp_path / "runs", tmp_path / "reports"
    # packed (a variant's two seeds in one process): each member keeps its own checkpoint, as unpacked
    done = cli("run", str(tmp_path / "tiny.yaml"), "--runs", str(runs), "--wandb", "disabled", "--pack", "seeds")
    assert done.returncode == 0, done.stderr
    for seed in (0, 1):  # rope's checkpoints are gone: its section must say so
        (runs / "tiny" / f"rope-seed{seed}" / "checkpoint.pt").unlink()
    report = cli("report", "tiny", "--runs", str(runs), "--out", str(out))
    assert report.returncode == 0, report.stderr
    md = (out / "tiny" / "report.md").read_text()
    samples = md.split("## Samples", 1)[1]
    best = min((json.loads((runs / "tiny" / f"learned-seed{s}" / "summary.json").read_text())["best_val_loss"],
                f"learned-seed{s}") for s in (0, 1))[1]
    assert f"**learned** (run {best}):" in samples
    text = re.search(r"```text\n(.*?)\n```", samples, re.S).group(1)
    assert len(text) >= 250 and "temperature 0.8, top-k 40" in samples
    generated = cli("generate", str(runs / "tiny" / best), "--prompt", "\n", "--max-new-tokens", "300",
                    "--temperature", "0.8", "--top-k", "40", "--seed", "0", "--device", "cpu")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.rstrip("\n") == text.rstrip("\n")  # the same text as `gptlab generate` (prompt first)
    assert re.search(r"\*\*rope\*\* \(run rope-seed\d\):\n\nNo checkpoint\.", samples)
    rope = next(row for row in csv.DictReader(open(out / "tiny" / "summary.csv")) if row["variant"] == "rope")
    if rope["significant"] == "True":  # the verdict the table gives, in the words the findings must use
        words = f"significantly {'better' if float(rope['diff']) < 0 else 'worse'}"
    else:
        words = "equivalent within ±0.05 (TOST" if rope["equivalent"] == "True" else "inconclusive"
    finding = re.search(r"^\W*(rope has .*)$", md, re.M)
    assert finding and f": {words}" in finding.group(1), (words, finding and finding.group(1))
    first = md
    again = cli("report", "tiny", "--runs", str(runs), "--out", str(out))
    assert again.returncode == 0 and (out / "tiny" / "report.md").read_text() == first


def test_report_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, gptlab.frames.load, gptlab.report.build, gptlab.report.samples, gptlab.stats.effects; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
