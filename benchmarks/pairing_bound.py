"""Why benchmarks/specs/pairing_adaptive_33.yaml's paired study cannot reach 0.4x the unpaired runs with its error
control intact (benchmarks/pairing.md, part 2c). Numpy and scipy only, no training.

1. Replays the stored runs of that study (both arms' stores joined: training is deterministic, so seed s of a
   variant has one value whichever arm trained it) under four paired look rules, each with gptlab's spending, Holm
   passing and pooling as shipped, only the skew handling swapped:
     t        the paired t alone (no skew handling; mutant "no_skew" of the simulation)
     hall     the shipped rule: the t and Hall's T both, skewness pooled over the open comparisons
     calib    the t and a calibrated reference both: the exact quantiles of the studentised mean of n standardised
              lognormal draws with the pooled skewness (Monte Carlo), the family of the simulation's skewed cases
     calib_own  the same at each comparison's own skewness
2. Simulates each rule on the case that decides (variant sd 3x the baseline's, lognormal sigma 0.5, K = 3) at
   4000 studies, as benchmarks/sequential_sim.py does.
3. Prints the chance, under a mean-zero lognormal-shaped null with skewness 1, 1.5, 2, of a paired t at least as far
   out as relu's at 5 and 7 pairs: the evidence a skew-robust test may give those looks.

    python benchmarks/pairing_bound.py --studies 4000 --out benchmarks/results/pairing_bound.json

`--stored` and `--spec` replay another study of benchmarks/pairing_adaptive.py the same way (its comparisons, budget
and margin from the spec); `--studies 0` skips the simulation, which does not depend on the study (part 2e).
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np
import yaml
from scipy import optimize, stats

from gptlab.stats import sequential
from gptlab.stats import sequential_sim
from gptlab.stats import skew as sk
from gptlab.stats.sequential import SequentialDesign, decide_family, rejects
from gptlab.stats.sequential_sim import Noise, simulate

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "benchmarks/results/pairing_adaptive_33.json"
GRID = np.round(np.arange(0.0, 4.01, 0.25), 2)  # skewness grid of the reference tables
PS = np.exp(np.linspace(np.log(1e-5), np.log(0.5), 200))  # one-sided levels tabulated
DRAWS = 1_000_000


def _sigma(g: float) -> float:
    """The lognormal sigma whose skewness is g."""
    return optimize.brentq(lambda s: (np.exp(s * s) + 2) * np.sqrt(np.exp(s * s) - 1) - g, 1e-6, 3.0)


def null_t(n: int, g: float, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """Paired t statistics of n iid mean-zero standardised lognormal draws of skewness g (g = 0: Gaussian)."""
    rng = np.random.default_rng([n, int(round(g * 100)), seed])
    if g == 0:
        x = rng.standard_normal((draws, n))
    else:
        s = _sigma(g)
        x = (rng.lognormal(0.0, s, (draws, n)) - np.exp(s * s / 2)) / np.sqrt((np.exp(s * s) - 1) * np.exp(s * s))
    return x.mean(1) / x.std(1, ddof=1) * np.sqrt(n)


@functools.lru_cache(None)
def _table(n: int, g: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) one-sided quantiles at PS of the reference t for n and skewness g >= 0."""
    if g == 0:
        return stats.t.ppf(PS, n - 1), stats.t.isf(PS, n - 1)
    t = null_t(n, g)
    return np.quantile(t, PS), np.quantile(t, 1 - PS)


def _quantile(n: int, g: np.ndarray, p: np.ndarray, upper: bool) -> np.ndarray:
    """The reference's one-sided quantile at level p, |g| rounded up to the grid (the cautious side); a negative
    skewness mirrors the positive one."""
    gi = np.searchsorted(GRID, np.minimum(np.abs(g), GRID[-1]) - 1e-12)
    out = np.empty(g.shape)
    for k in np.unique(gi):
        lo, hi = _table(int(n), float(GRID[k]))
        for sign in (1, -1):
            sel = (gi == k) & ((g >= 0) if sign == 1 else (g < 0))
            if sel.any():
                side = hi if (upper if sign == 1 else not upper) else lo
                out[sel] = sign * np.interp(np.log(p[sel]), np.log(PS), side)
    return out


def calibrated_hull(diff, se, n, g, q):  # noqa: ANN001, ANN201 - skew.hull's signature
    """skew.hull with the calibrated reference in place of Hall's T: the hull of diff -+ q se and of the mu the
    reference accepts at the same one-sided level."""
    diff, se, g, n, q = np.broadcast_arrays(*(np.asarray(a, float) for a in (diff, se, g, n, q)))
    p = stats.t.sf(q, np.maximum(n - 1, 1))
    lo, hi = diff - q * se, diff + q * se
    for m in np.unique(n[np.isfinite(n) & (n >= 3)]):
        sel = n == m
        lo[sel] = np.fmin(lo[sel], diff[sel] - _quantile(m, g[sel], p[sel], True) * se[sel])
        hi[sel] = np.fmax(hi[sel], diff[sel] - _quantile(m, g[sel], p[sel], False) * se[sel])
    return lo, hi


class _Skew:
    """gptlab.stats.skew with `hull` swapped."""

    def __init__(self, hull) -> None:  # noqa: ANN001
        self.hull = hull

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(sk, name)


_pooled_of, _decide_batch = sequential.skew_of, sequential_sim.decide_batch


def _own_skew(*args, skew=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    return _decide_batch(*args, skew=None, **kwargs)  # each comparison its own skewness


def use(rule: str) -> None:
    """Install a look rule into gptlab.stats.sequential and the simulation (this process only); rule "t" is the
    simulation's mutant "no_skew" (see `simulated`)."""
    sequential.sk = _Skew(calibrated_hull if rule.startswith("calib") else sk.hull)
    sequential.skew_of = {"t": lambda comparisons: 0.0, "calib_own": lambda comparisons: None}.get(rule, _pooled_of)
    sequential_sim.decide_batch = _own_skew if rule == "calib_own" else _decide_batch


def stored(path: Path = STORED) -> dict[str, dict[int, float]]:
    values: dict[str, dict[int, float]] = {}
    for arm in json.loads(path.read_text())["arms"].values():
        for run, r in arm["runs"].items():
            name, seed = run.rsplit("-seed", 1)
            values.setdefault(name, {})[int(seed)] = r["final_val_loss"]
    return values


def study(spec: dict) -> tuple[SequentialDesign, list[str], str]:
    """The adaptive design, the comparisons and the baseline of a pairing_adaptive spec."""
    base, seeds = spec["compare"]["baseline"], spec["seeds"]
    names = [v for v in spec["variants"] if v != base]
    return SequentialDesign(start=seeds["start"], max=seeds["max"], step=seeds["step"], alpha=0.05,
                            margin=spec["compare"]["margin"], n_comparisons=len(names)), names, base


def replay(rule: str, values: dict, spec: dict) -> dict:
    """The paired adaptive study of `spec` re-decided from the stored runs under `rule`."""
    use(rule)
    design, names, base = study(spec)
    k = len(names)
    open_, decided, closed, shares = list(names), [0, 0], {}, {}
    for n in design.looks:
        shares[n] = (k - min(decided[0], k - 1), k - min(decided[1], k - 1))
        if any(len(values[c]) < n for c in open_ + [base]):
            return {"closed": closed, "open": open_, "data_ends_at": n, "runs": None, "shares": shares}
        comparisons = {c: (np.array([values[c][s] for s in range(n)]), np.array([values[base][s] for s in range(n)]))
                       for c in open_}
        for c, r in decide_family(design, comparisons, decided=tuple(decided), paired=True).items():
            if r.verdict != "open":
                d, e = rejects(design, r)
                decided = [decided[0] + int(d), decided[1] + int(e)]
                closed[c] = {"verdict": r.verdict, "pairs": n}
                open_.remove(c)
        if not open_:
            break
    runs = sum(v["pairs"] for v in closed.values()) + max(v["pairs"] for v in closed.values())
    return {"closed": closed, "open": open_, "runs": runs, "shares": shares}


def simulated(rule: str, studies: int) -> dict:
    use(rule)
    design = SequentialDesign(start=3, max=12, step=2, alpha=0.05, margin=0.02, n_comparisons=3)
    case = Noise(sd_ratio=3.0, skew=0.5)
    mutant = "no_skew" if rule == "t" else None
    a = simulate(design, (0.0, 0.0, 0.0), 0.008, n_studies=studies, noise=case, paired=True, mutant=mutant)
    b = simulate(design, (0.02, 0.02, -0.02), 0.008, n_studies=studies, noise=case, paired=True, mutant=mutant)
    return {"false_different": a.family_rate("different"), "false_equivalent": b.family_rate("equivalent")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=4000, help="0: no simulation")
    ap.add_argument("--stored", type=Path, default=STORED, help="benchmarks/pairing_adaptive.py's JSON")
    ap.add_argument("--spec", type=Path, default=ROOT / "benchmarks/specs/pairing_adaptive_33.yaml")
    ap.add_argument("--rules", default="t,hall,calib,calib_own")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    spec = yaml.safe_load(args.spec.read_text())
    design, names, base = study(spec)
    values = stored(args.stored)
    unpaired = json.loads(args.stored.read_text())["arms"]["unpaired"]["n_runs"]
    limit = 0.05 + 3 * np.sqrt(0.05 * 0.95 / args.studies) if args.studies else None
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "stored": str(args.stored),
                 "spec": str(args.spec), "studies": args.studies, "limit": limit, "unpaired_runs": unpaired,
                 "rules": {}}
    print(f"limit alpha + 3 SE = {limit}; the unpaired design took {unpaired} runs\n")
    print(f"| rule | {' | '.join(names)} | runs | vs unpaired | sd 3x + skew: false different | false equivalent |")
    print("|---|" + "---|" * (len(names) + 4))
    for rule in args.rules.split(","):
        r = replay(rule, values, spec)
        s = simulated(rule, args.studies) if args.studies else {"false_different": None, "false_equivalent": None}
        out["rules"][rule] = {"replay": r, "simulation": s}
        cells = [f"{r['closed'][c]['verdict']} at {r['closed'][c]['pairs']}" if c in r["closed"] else "open"
                 for c in names]
        sims = [f"{s[k]:.4f} {'ok' if s[k] <= limit else 'FAIL'}" if s[k] is not None else "-"
                for k in ("false_different", "false_equivalent")]
        ratio = f"{r['runs'] / unpaired:.2f}x" if r["runs"] else "-"
        print(f"| {rule} | {' | '.join(cells)} | {r['runs']} | {ratio} | {sims[0]} | {sims[1]} |", flush=True)
    if "relu" in values and all(s in values["relu"] for s in range(7)):
        d = np.array([values["relu"][s] - values[base][s] for s in range(7)])
        tail = {}
        print("\nP(paired t <= relu's) under a mean-zero lognormal-shaped null (1,000,000 draws each):")
        for n in (5, 7):
            x = d[:n]
            t_obs = float(x.mean() / x.std(ddof=1) * np.sqrt(n))
            row = {f"skew {g}": float(np.mean(null_t(n, g, seed=1) <= t_obs)) for g in (0.0, 1.0, 1.5, 2.0)}
            tail[n] = {"t": t_obs, **row}
            print(f"  {n} pairs, t = {t_obs:.2f}: " + ", ".join(f"{k} {v:.5f}" for k, v in row.items()))
        out["relu_tail"] = tail
        shares = out["rules"]["hall"]["replay"]["shares"] if "hall" in out["rules"] else {}
        out["one_sided_level_different"] = {n: float(design.thresholds(shares[n])[0][design.look_index(n)])
                                            for n in (5, 7) if n in shares}
        print("  the look's one-sided level for 'different' (shares as in the replay):",
              {n: round(v, 5) for n, v in out["one_sided_level_different"].items()})
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
