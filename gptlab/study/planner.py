"""One planner for every study: a sequence of rounds, each planned from what the store holds.

A round is a list of runs handed to the one job pool (gptlab.jobs, through the caller's `execute`). The
policies decide the rounds: tuning (stage 1: every cell's candidates; stage 2 at the chosen values), adaptive
seeds (more seeds only where a comparison is still open) and scale (sizes are cells, crossed with variants).
Nothing lives in the process: killed at any point, the same command replans from the store, and every run
that finished is skipped, so no run is trained twice.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gptlab.runner.design import Adaptive
from gptlab.runner.spec import PlannedRun, Spec
from gptlab.store import UNSUCCESSFUL
from gptlab.study import tuning
from gptlab.study.rounds import Round
from gptlab.study.values import stored

# execute(round, rerun_of) -> the round's exit code (0, 1 some failed, 130 interrupted); rerun_of(run) is the
# --rerun that applies to a run (None once this invocation has trained it)
Execute = Callable[["Round", Callable[[PlannedRun], "str | None"]], int]


@dataclass
class Planner:
    spec: Spec
    runs_root: Path
    rerun: str | None = None
    pack: str | None = None  # the user's --pack; the tuning stage packs `auto` unless --pack says otherwise
    launcher: str = "local"
    say: Callable[[str], None] = print
    handed: set[str] = field(default_factory=set)  # runs trained in this invocation (rerun applies once)

    @property
    def tuning_pack(self) -> str | None:
        """A cell's tuning runs differ only in tuned scalar keys: `auto` packs them (it packs seeds too), unless
        the user's --pack says otherwise (`seeds`: a pack per candidate value)."""
        return (self.pack or "auto") if self.launcher == "local" else None

    def execute(self, execute: Execute) -> int:
        """Run the study to its end; the worst round's exit code (130 stops at once)."""
        worst = 0
        chosen = None
        if self.spec.tune is not None:
            runs = tuning.tuning_runs(self.spec)
            code = self._round(execute, Round("stage 1: tuning", runs, self.tuning_pack))
            if code == 130:
                return code
            worst = max(worst, code)
            chosen = self.choice(runs)
        if isinstance(self.spec.seeds, Adaptive):
            from gptlab.study.adaptive import next_round

            last: list[str] | None = None
            # a run --rerun trains again counts as not run until this invocation has trained it
            forget = None if self.rerun is None else lambda name, got: name not in self.handed and (
                self.rerun == "all" or got.status in UNSUCCESSFUL)
            while (nxt := next_round(self.spec, self.runs_root, chosen, pack=self.pack, say=self.say,
                                     forget=forget)) is not None:
                names = [r.name for r in nxt.runs]
                if names == last:  # the same round again: its runs are held elsewhere or were interrupted
                    self.say(f"{nxt.title}: runs still unfinished (running elsewhere?); rerun to continue")
                    return max(worst, 1)
                code = self._round(execute, nxt)
                if code == 130:
                    return code
                worst, last = max(worst, code), names
            return worst
        seeds = {cell.name: self.spec.seed_list() for cell in self.spec.cells}
        runs = tuning.compare_runs(self.spec, chosen, seeds)
        title = "stage 2: comparison at the tuned values" if self.spec.tune else "runs"
        return max(worst, self._round(execute, Round(title, runs, self.pack)))

    def choice(self, tuning_runs: list[PlannedRun]) -> dict[str, dict]:
        """Each cell's tuned values: reused from tuning.json unless `--rerun all` asked to decide again."""
        if self.rerun != "all":
            kept = tuning.stored_choice(self.spec, self.runs_root)
            if kept is not None:
                return kept
        results = stored(self.spec, self.runs_root, [r.name for r in tuning_runs])
        chosen = tuning.decide(self.spec, self.runs_root, results)
        for cell in self.spec.cells:
            values = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in chosen[cell.name].items())
            self.say(f"tuned {cell.name or 'base'}: {values}")
        return chosen

    def _round(self, execute: Execute, rnd: Round) -> int:
        if rnd.note:
            self.say(rnd.note)
        handed = set(self.handed)
        code = execute(rnd, lambda run: None if run.name in handed else self.rerun)
        self.handed |= {r.name for r in rnd.runs}
        return code
