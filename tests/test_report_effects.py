"""Factorial studies: main effects and interactions against statsmodels' own ANOVA, one-factor
comparisons against scipy's Welch test, Holm over the whole family, and an incomplete, unbalanced design."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind
from test_analysis_store import write_run, write_spec

from gptlab.stats.effects import EFFECT_COLUMNS, factors_of
from gptlab.frames.load import load_store
from gptlab.report.build import analyze, write_reports

CELLS = {"res_ln": (True, "layernorm"), "nores_ln": (False, "layernorm"),
         "res_none": (True, "none"), "nores_none": (False, "none")}
NOISE = {"res_ln": [-0.010, 0.000, 0.012], "nores_ln": [0.008, -0.011, 0.001],
         "res_none": [0.000, 0.009, -0.012], "nores_none": [-0.004, 0.013, -0.006]}


def residual_store(root: Path, experiment: str, means: dict[str, float], failed: tuple[str, ...] = (),
                   seeds: dict[str, int] | None = None, pairing: str = "none",
                   seed_effect: tuple[float, ...] = (0.0, 0.0, 0.0)) -> pd.DataFrame:
    """residual x norm, 3 seeds per cell around `means` (plus `seed_effect[seed]` shared by every cell); returns
    the finished runs as a frame. The unpaired analysis (`pairing: none`) unless told otherwise."""
    write_spec(root, experiment, {"description": "Do residuals matter, and does it depend on the norm?",
                                  "variants": {v: {"residual": r, "norm": n} for v, (r, n) in CELLS.items()},
                                  "seeds": [0, 1, 2], "compare": {"metric": "val/loss", "baseline": "res_ln",
                                                                  "pairing": pairing}})
    rows = []
    for variant, (residual, norm) in CELLS.items():
        for seed in range((seeds or {}).get(variant, 3)):
            value = means[variant] + NOISE[variant][seed] + seed_effect[seed]
            status = "failed" if variant in failed else "finished"
            write_run(root, experiment, f"{variant}-seed{seed}", best=value, status=status, variant=variant,
                      seed=seed, overrides={"residual": residual, "norm": norm})
            if status == "finished":
                rows.append({"variant": variant, "residual": str(residual).lower(), "norm": norm, "y": value,
                             "seed": seed})
    return pd.DataFrame(rows)


def cell_means(data: pd.DataFrame) -> dict[tuple[str, str], float]:
    return data.groupby(["residual", "norm"])["y"].mean().to_dict()


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    planted = residual_store(root, "planted", {"res_ln": 2.0, "nores_ln": 2.3, "res_none": 2.4, "nores_none": 3.2})
    additive = residual_store(root, "additive", {"res_ln": 2.0, "nores_ln": 2.3, "res_none": 2.4, "nores_none": 2.7})
    store = load_store(root)
    return root, {"planted": (planted, analyze(store, "planted")), "additive": (additive, analyze(store, "additive"))}


@pytest.mark.parametrize("name, interaction", [("planted", 0.5), ("additive", 0.0)])
def test_main_effects_and_interaction_match_statsmodels_anova(studies, name: str, interaction: float) -> None:
    data, analysis = studies[1][name]
    fit = smf.ols("y ~ C(residual, Sum) * C(norm, Sum)", data).fit()
    anova = anova_lm(fit, typ=3)
    m = cell_means(data)
    expected = {  # level - reference, the reference being the baseline's level (residual true, layernorm)
        "residual": ((m["false", "layernorm"] - m["true", "layernorm"]) + (m["false", "none"] - m["true", "none"])) / 2,
        "norm": ((m["true", "none"] - m["true", "layernorm"]) + (m["false", "none"] - m["false", "layernorm"])) / 2,
        "norm:residual": (m["false", "none"] - m["true", "none"]) - (m["false", "layernorm"] - m["true", "layernorm"]),
    }
    weights = {"residual": 1 / 3, "norm": 1 / 3, "norm:residual": 4 / 3}  # sum of w^2 / n over the 4 cells
    p_anova = {"residual": anova.loc["C(residual, Sum)", "PR(>F)"], "norm": anova.loc["C(norm, Sum)", "PR(>F)"],
               "norm:residual": anova.loc["C(residual, Sum):C(norm, Sum)", "PR(>F)"]}
    effects = analysis.effects[analysis.effects["kind"] != "simple"].set_index("term")
    assert list(effects.index) == ["norm", "residual", "norm:residual"]  # config order
    half = stats.t.ppf(0.975, fit.df_resid) * np.sqrt(fit.scale * np.array([weights[t] for t in expected]))
    np.testing.assert_allclose(effects.loc[list(expected), "estimate"], list(expected.values()), atol=1e-12)
    np.testing.assert_allclose(effects.loc[list(expected), "ci_low"], np.array(list(expected.values())) - half,
                               atol=1e-12)
    np.testing.assert_allclose(effects.loc[list(expected), "p_value"], [p_anova[t] for t in expected], rtol=1e-6)
    assert expected["norm:residual"] == pytest.approx(interaction, abs=0.02)
    assert bool(effects.loc["norm:residual", "significant"]) == (interaction != 0)
    assert bool(effects.loc["residual", "significant"])
    assert "residual false - true (averaged over norm)" == effects.loc["residual", "contrast"]


def test_family_is_adjusted_together_with_holm(studies) -> None:
    """3 model terms + 4 one-factor comparisons (2 of them the summary rows) + their 4 TOST = 11 tests, one Holm."""
    data, analysis = studies[1]["planted"]
    fit = smf.ols("y ~ C(residual, Sum) * C(norm, Sum)", data).fit()
    anova = anova_lm(fit, typ=3)
    model_p = [anova.loc[t, "PR(>F)"] for t in ("C(norm, Sum)", "C(residual, Sum)", "C(residual, Sum):C(norm, Sum)")]
    y = {v: data.loc[data["variant"] == v, "y"].to_numpy() for v in CELLS}
    pairs = [("nores_ln", "res_ln"), ("nores_none", "res_none"), ("res_none", "res_ln"), ("nores_none", "nores_ln")]
    pair_p = [stats.ttest_ind(y[a], y[b], equal_var=False).pvalue for a, b in pairs]
    tost_p = [ttost_ind(y[a], y[b], -0.02, 0.02, usevar="unequal")[0] for a, b in pairs]
    adjusted = multipletests(model_p + pair_p + tost_p, method="holm")[1]
    effects = analysis.effects
    np.testing.assert_allclose(effects.loc[effects["kind"] != "simple", "p_adjusted"], adjusted[:3], rtol=1e-6)
    simple = effects[effects["kind"] == "simple"].set_index(effects.loc[effects["kind"] == "simple", "pair"].map(tuple))
    np.testing.assert_allclose(simple.loc[pairs, "p_adjusted"], adjusted[3:7], rtol=1e-6)
    table = analysis.table.set_index("variant")
    np.testing.assert_allclose(table.loc[["nores_ln", "res_none"], "p_adjusted"], [adjusted[3], adjusted[5]], rtol=1e-6)
    assert analysis.family.total == 11 and analysis.family.method == "holm"
    equivalent = multipletests(model_p + pair_p + tost_p, method="holm")[1][7:] < 0.05
    assert list(simple.loc[pairs, "equivalent"]) == list(equivalent)
    assert not table.loc["nores_none", "tested"] and table.loc["nores_none", "several"]  # two factors apart
    assert analysis.headline.startswith("norm matters most for val/loss: norm none - layernorm changes it by +0.6")
    assert "significant interaction: norm:residual" in analysis.headline


def test_effects_csv_and_report_sections(studies, tmp_path: Path) -> None:
    root, _ = studies
    write_reports(root, tmp_path, ["planted"])
    csv = pd.read_csv(tmp_path / "planted" / "effects.csv")
    assert list(csv.columns) == EFFECT_COLUMNS
    assert list(csv["term"][:3]) == ["norm", "residual", "norm:residual"]
    assert csv["contrast"].str.contains("residual false - true at norm=none").any()
    md = (tmp_path / "planted" / "report.md").read_text()
    assert "## Effects" in md and "Design: 2 x 2 (norm, residual); 4 of 4 cells" in md
    assert "11 tests (4 difference, 4 equivalence (TOST), 3 main-effect/interaction), adjusted together by Holm" in md
    assert "| nores_none | 3/3 |" in md and "differs in several factors" in md
    assert "(figure effects)" in md and (tmp_path / "planted" / "figures" / "effects.png").is_file()


def test_incomplete_unbalanced_design_is_estimated_and_stated(tmp_path: Path) -> None:
    """nores_none failed in every seed and res_none has 2 seeds: main effects from an additive model."""
    data = residual_store(tmp_path, "holes", {"res_ln": 2.0, "nores_ln": 2.3, "res_none": 2.4, "nores_none": 9.9},
                          failed=("nores_none",), seeds={"res_none": 2})
    analysis = analyze(load_store(tmp_path), "holes")
    fit = smf.ols("y ~ C(residual, Sum) + C(norm, Sum)", data).fit()
    new = pd.DataFrame({"residual": ["false", "true", "true", "true"], "norm": ["layernorm", "layernorm", "none", "layernorm"]})
    pred = fit.predict(new).to_numpy()
    effects = analysis.effects[analysis.effects["kind"] == "main"].set_index("term")
    assert list(effects.index) == ["norm", "residual"]  # no interaction: the design cannot separate it
    np.testing.assert_allclose(effects["estimate"], [pred[2] - pred[3], pred[0] - pred[1]], atol=1e-12)
    np.testing.assert_allclose(effects.loc["residual", "p_value"], fit.pvalues["C(residual, Sum)[S.false]"], rtol=1e-6)
    np.testing.assert_allclose(effects.loc["norm", "p_value"], fit.pvalues["C(norm, Sum)[S.layernorm]"], rtol=1e-6)
    notes = " ".join(analysis.design_notes)
    assert "3 of 4 cells have finished runs (no finished run: nores_none)" in notes
    assert "unbalanced, seeds per cell 2-3 (res_none 2)" in notes
    assert "Interactions not estimated (not every cell was run); the main effects assume there are none" in notes
    assert "main effects only" in notes
    assert analysis.table.set_index("variant").loc["nores_none", "n_failed"] == 3


def test_keys_that_always_change_together_are_one_factor() -> None:
    config = pd.DataFrame({"norm_placement": ["pre", "post", "pre", "post"], "warmup_steps": [100, 1000, 100, 1000],
                           "lr": [1e-3, 1e-3, 1e-2, 1e-2]}, index=["pre-1", "post-1", "pre-2", "post-2"])
    factors = factors_of(config, "post-2")
    assert factors.names == ["norm_placement+warmup_steps", "lr"]
    assert factors.levels == {"norm_placement+warmup_steps": ["post 1000", "pre 100"], "lr": ["0.01", "0.001"]}
    assert factors.crossed() and factors.one_apart("pre-1", "post-1") and not factors.one_apart("pre-1", "post-2")
    assert factors.cells["post-1"] == ("post 1000", "0.001")


def test_one_seed_per_cell_drops_the_highest_interaction(tmp_path: Path) -> None:
    """2 x 2 x 2 with one seed each: the full model would fit exactly, so the 3-way term is left out and said."""
    variants = {f"r{int(r)}_{n}_{d}": {"residual": r, "norm": n, "n_layer": d}
                for r in (True, False) for n in ("layernorm", "none") for d in (1, 2)}
    write_spec(tmp_path, "one", {"variants": variants, "seeds": [0], "compare": {"baseline": "r1_layernorm_1"}})
    rows = []
    for i, (name, keys) in enumerate(variants.items()):
        value = 2.0 + 0.5 * (not keys["residual"]) + 0.3 * (keys["norm"] == "none") + 0.01 * ((i * 7) % 5)
        write_run(tmp_path, "one", f"{name}-seed0", best=value, variant=name, overrides=keys)
        rows.append({"residual": str(keys["residual"]).lower(), "norm": keys["norm"], "n_layer": str(keys["n_layer"]), "y": value})
    analysis = analyze(load_store(tmp_path), "one")
    fit = smf.ols("y ~ (C(n_layer, Sum) + C(norm, Sum) + C(residual, Sum))**2", pd.DataFrame(rows)).fit()
    terms = list(analysis.effects.loc[analysis.effects["kind"] != "simple", "term"])
    assert terms == ["n_layer", "norm", "residual", "n_layer:norm", "n_layer:residual", "norm:residual"]
    main = analysis.effects.set_index("term").loc["residual"]
    main = main[main["kind"] == "main"].iloc[0]
    assert main["estimate"] == pytest.approx(2 * fit.params["C(residual, Sum)[S.false]"], abs=1e-12)  # false - mean, twice
    assert main["p_value"] == pytest.approx(fit.pvalues["C(residual, Sum)[S.false]"], rel=1e-6)
    assert ("Interactions of more than 2 factors not estimated (seeds leave no residual degrees of freedom)."
            in analysis.design_notes)


def test_paired_factorial_blocks_on_seed_and_pairs_the_simple_effects(tmp_path: Path) -> None:
    """pairing auto (the default): the OLS gains seed as a block factor (statsmodels' own fit with C(seed, Sum)),
    which takes a seed effect shared by every cell out of the residual, and each one-factor comparison is the
    paired t-test (scipy's ttest_rel) on the per-seed differences."""
    data = residual_store(tmp_path, "blocked", {"res_ln": 2.0, "nores_ln": 2.3, "res_none": 2.4, "nores_none": 3.2},
                          pairing="auto", seed_effect=(-0.05, 0.0, 0.05))
    analysis = analyze(load_store(tmp_path), "blocked")
    fit = smf.ols("y ~ C(residual, Sum) * C(norm, Sum) + C(seed, Sum)", data).fit()
    unblocked = smf.ols("y ~ C(residual, Sum) * C(norm, Sum)", data).fit()
    anova = anova_lm(fit, typ=3)
    effects = analysis.effects[analysis.effects["kind"] != "simple"].set_index("term")
    np.testing.assert_allclose(effects.loc["residual", "p_value"], anova.loc["C(residual, Sum)", "PR(>F)"], rtol=1e-6)
    np.testing.assert_allclose(effects.loc["norm:residual", "p_value"],
                               anova.loc["C(residual, Sum):C(norm, Sum)", "PR(>F)"], rtol=1e-6)
    half = stats.t.ppf(0.975, fit.df_resid) * np.sqrt(fit.scale / 3)
    assert effects.loc["residual", "ci_high"] - effects.loc["residual", "estimate"] == pytest.approx(half, rel=1e-9)
    assert fit.scale < unblocked.scale / 10  # the shared seed effect left the residual
    y = {v: data[data["variant"] == v].sort_values("seed")["y"].to_numpy() for v in CELLS}
    simple = analysis.effects[analysis.effects["kind"] == "simple"]
    simple = simple.set_index(simple["pair"].map(tuple))
    for a, b in [("nores_ln", "res_ln"), ("res_none", "res_ln"), ("nores_none", "nores_ln")]:
        assert simple.loc[[(a, b)], "p_value"].iloc[0] == pytest.approx(stats.ttest_rel(y[a], y[b]).pvalue, rel=1e-9)
    assert "seed as a block factor" in " ".join(analysis.design_notes)
