"""The spec's compare block: margin and correction are validated up front (exit 2, file:line, nothing
written) and reach the report's criterion."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_user_error, cli

from gptlab.stats.summary import Criterion
from gptlab.errors import UserError
from gptlab.runner.spec import load_spec

BASE = "name: x\nvariants: {a: {}, b: {lr: 0.01}}\n"


@pytest.mark.parametrize("compare, needles", [
    ("compare: {margin: -0.1}\n", ("spec.yaml:3", "compare.margin", "non-negative")),
    ("compare: {margin: lots}\n", ("spec.yaml:3", "compare.margin")),
    ("compare: {correction: bonferroni}\n", ("spec.yaml:3", "compare.correction", "holm, bh, none")),
    ("compare: {corection: holm}\n", ("spec.yaml:3", "did you mean 'correction'")),
    ("compare: {pairing: paired}\n", ("spec.yaml:3", "compare.pairing", "auto, seed, none")),
    ("compare: {pairng: auto}\n", ("spec.yaml:3", "did you mean 'pairing'")),
])
def test_bad_compare_keys_name_file_line_and_key(tmp_path: Path, compare: str, needles: tuple[str, ...]) -> None:
    (tmp_path / "spec.yaml").write_text(BASE + compare)
    with pytest.raises(UserError) as err:
        load_spec(tmp_path / "spec.yaml")
    for needle in needles:
        assert needle in str(err.value)


def test_bad_compare_key_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(BASE + "compare: {correction: bonferroni}\n")
    out = cli("run", str(tmp_path / "spec.yaml"), "--runs", str(tmp_path / "runs"))
    assert_user_error(out, "spec.yaml:3", "compare.correction")
    assert not (tmp_path / "runs").exists()


def test_margin_and_correction_reach_the_report(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(BASE + "compare: {baseline: a, margin: 0.05, correction: bh}\n")
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.compare.margin == 0.05 and spec.compare.correction == "bh"
    criterion = Criterion.from_spec(spec.raw)
    assert (criterion.margin, criterion.correction, criterion.baseline) == (0.05, "bh", "a")
    assert Criterion.from_spec(None).margin_for(2.0) == 0.02
    assert criterion.pairing == "auto" and Criterion.from_spec({"compare": {"pairing": "none"}}).pairing == "none"
    (tmp_path / "spec.yaml").write_text(BASE + "compare: {baseline: a, pairing: seed}\n")
    assert load_spec(tmp_path / "spec.yaml").compare.pairing == "seed"
    assert Criterion.from_spec({"compare": {"metric": "tokens_per_s"}}).margin_for(5000.0) == pytest.approx(100.0)
