"""The adaptive-seeds policy: each round is replayed from the store (gptlab.stats.adaptive) and adds seeds only
to the cells whose comparison with the baseline is still open."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from gptlab.stats.adaptive import Pair, Replay, pairs, replay
from gptlab.stats.adaptive import design_of as sequential_design
from gptlab.stats.sequential import SequentialDesign
from gptlab.stats.summary import LOSS_MARGIN
from gptlab.runner.spec import Spec
from gptlab.store import ENDED
from gptlab.study.rounds import Round
from gptlab.study.tuning import compare_runs
from gptlab.study.values import Stored, stored


def pairs_of(spec: Spec) -> list[Pair]:
    return pairs([(c.name, c.variant) for c in spec.cells], spec.compare.baseline)


def design_of(spec: Spec) -> SequentialDesign:
    margin = spec.compare.margin if spec.compare.margin is not None else LOSS_MARGIN
    s = spec.seeds
    return sequential_design({"start": s.start, "max": s.max, "step": s.step}, margin, len(pairs_of(spec)))


def replay_store(spec: Spec, runs_root: Path, chosen: dict | None,
                 forget: Callable[[str, Stored], bool] | None = None) -> Replay:
    """The study as far as the store holds it; `forget(name, stored)`: count that run as not run yet (a
    `--rerun` trains it again, so its stored value must not decide anything)."""
    every = compare_runs(spec, chosen, {c.name: spec.seed_list() for c in spec.cells})
    compared = [r for r in every if r.study.get("at") != "shared"]
    got = stored(spec, runs_root, [r.name for r in compared])
    if forget is not None:
        got = {name: Stored(None, math.nan) if forget(name, s) else s for name, s in got.items()}
    by_key = _by_cell_seed(spec, compared, got)
    sign = 1 if spec.compare.goal == "maximize" else -1
    return replay(design_of(spec), pairs_of(spec),
                  ended=lambda cell, seed: by_key[(cell, seed)].status in ENDED,
                  values=lambda cell, seed: by_key[(cell, seed)].value, sign=sign,
                  paired=spec.compare.pairing != "none")  # both sides hold the same seeds: pairs by construction


def _by_cell_seed(spec: Spec, runs, got) -> dict:  # noqa: ANN001
    """(cell, seed) -> Stored: compare_runs lists each cell's seeds in order, cell after cell."""
    per_cell = len(spec.seed_list())
    return {(cell.name, run.seed): got[run.name]
            for i, cell in enumerate(spec.cells) for run in runs[i * per_cell:(i + 1) * per_cell]}


def first_round(spec: Spec, chosen: dict | None, pack: str | None = None) -> Round:
    seeds = {c.name: spec.seeds.seeds(spec.seeds.start) for c in spec.cells}
    return Round("round 1", compare_runs(spec, chosen, seeds), pack)


def next_round(spec: Spec, runs_root: Path, chosen: dict | None, *, pack: str | None = None,
               say: Callable[[str], None] = print, forget: Callable[[str, Stored], bool] | None = None
               ) -> Round | None:
    """The next round's runs (every planned seed so far; finished ones are skipped), or None when every
    comparison is decided or the budget is reached (then the decisions are printed)."""
    state = replay_store(spec, runs_root, chosen, forget)
    if state.complete:
        say(decision_table(state))
        return None
    seeds = {c.name: spec.seeds.seeds(state.seeds[c.name]) for c in spec.cells}
    open_ = state.open()
    note = (f"round {state.round}: {len(open_)} comparison(s) open: "
            + ", ".join(f"{v} vs {state.outcomes[v].pair.baseline}" for v in open_)
            + " | seeds per cell: " + ", ".join(f"{c}={n}" for c, n in state.seeds.items()))
    opened = ", ".join(f"{v} vs {state.outcomes[v].pair.baseline}" for v in open_)
    return Round(f"round {state.round} of at most {len(state.design.looks)} (open: {opened})",
                 compare_runs(spec, chosen, seeds), pack, note)


def decision_table(state: Replay) -> str:
    """Which comparison decided what, in which round, with how many seeds."""
    from gptlab.jobs.view import format_table

    rows = []
    for name, o in state.outcomes.items():
        r = o.result
        diff = "-" if r is None else f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        why = o.stopped + (f" ({o.missing} seed(s) without a value, dropped)" if o.missing else "")
        rows.append((f"{name} vs {o.pair.baseline}", why, str(o.round), str(r.n if r else "-"), diff))
    return "adaptive seeds: decided\n" + format_table(("comparison", "stopped", "round", "seeds", "diff (CI)"), rows)

