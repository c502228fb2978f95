"""The report of a stored study is what 0.3.1 wrote, byte for byte, when `compare: {pairing: none}` asks for 0.3.1's
unpaired statistics: the proof that moving gptlab/analysis into frames/stats/report changed no behaviour, kept as
a test. tests/data/golden/runs holds two small studies trained by 0.3.1 (a fixed-seed one and an adaptive one,
checkpoints left out); tests/data/golden/expected holds what 0.3.1's `gptlab report` wrote from them (report.md,
summary.csv, each figure's PNG, report.html with its embedded images cut to `data:image`).

summary.csv gained the paired-seeds columns (`pairing`, `pairs`, `pair_corr`) since: they are dropped before the
comparison, and checked to say `unpaired`. Figures are compared as decoded pixels, not file bytes (PNG metadata)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import yaml

from gptlab.report.build import write_reports

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
STUDIES = ("smoke", "adaptive_cpu_v2")
NEW_COLUMNS = ["pairing", "pairs", "pair_corr"]


def _store(tmp: Path, pairing: str | None) -> Path:
    runs = tmp / "runs"
    shutil.copytree(GOLDEN / "runs", runs)
    for study in STUDIES:
        path = runs / study / "spec.yaml"
        spec = yaml.safe_load(path.read_text())
        if pairing is not None:
            spec["compare"]["pairing"] = pairing
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return runs


def strip_images(html: str) -> str:
    return re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "data:image", html)


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("golden")
    out = tmp / "reports"
    write_reports(_store(tmp, "none"), out)
    return out


@pytest.mark.parametrize("study", STUDIES)
def test_report_md_and_html_are_byte_identical(unpaired: Path, study: str) -> None:
    want = GOLDEN / "expected" / study
    assert (unpaired / study / "report.md").read_text() == (want / "report.md").read_text()
    assert strip_images((unpaired / study / "report.html").read_text()) == (want / "report.html.stripped").read_text()


def test_index_is_byte_identical(unpaired: Path) -> None:
    assert (unpaired / "index.md").read_text() == (GOLDEN / "expected" / "index.md").read_text()
    assert strip_images((unpaired / "index.html").read_text()) == (GOLDEN / "expected" / "index.html.stripped").read_text()


@pytest.mark.parametrize("study", STUDIES)
def test_summary_csv_has_the_same_numbers(unpaired: Path, study: str) -> None:
    got = pd.read_csv(unpaired / study / "summary.csv", dtype=str, keep_default_na=False)
    tested = got["p_value"] != ""
    assert set(got.loc[tested, "pairing"]) == {"unpaired"} and (got.loc[tested, "pairs"] == "").all()
    want = (GOLDEN / "expected" / study / "summary.csv").read_text()
    assert got.drop(columns=NEW_COLUMNS).to_csv(index=False, lineterminator="\n") == want


@pytest.mark.parametrize("study", STUDIES)
def test_figures_show_the_same_pixels(unpaired: Path, study: str) -> None:
    want = sorted(p.name for p in (GOLDEN / "expected" / study / "figures").glob("*.png"))
    assert want and sorted(p.name for p in (unpaired / study / "figures").glob("*.png")) == want
    for name in want:
        a = mpimg.imread(unpaired / study / "figures" / name)
        b = mpimg.imread(GOLDEN / "expected" / study / "figures" / name)
        assert a.shape == b.shape and np.array_equal(a, b), name
