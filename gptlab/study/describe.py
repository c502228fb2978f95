"""`gptlab run SPEC --dry-run` for a study in rounds: each stage's runs as far as the store lets them be known,
and the most runs the study can take."""
from __future__ import annotations

from gptlab.runner.design import Adaptive
from gptlab.runner.dryrun import dry_run_table, scale_lines
from gptlab.runner.execute import plan
from gptlab.study import tuning
from gptlab.study.planner import Planner


def describe_study(planner: Planner, slots: list[str], n_jobs: int) -> str:
    spec = planner.spec
    out: list[str] = []
    most = 0
    chosen = None
    if spec.tune is not None:
        runs = tuning.tuning_runs(spec)
        most += len(runs)
        jobs = plan(spec, planner.runs_root, planner.rerun, runs)
        where = "per cell" if spec.tune.at != "smallest" else \
            f"at the smallest size ({tuning.tuned_cells(spec)[0].size}) only, each choice reused at every size"
        out += [f"stage 1: tuning {', '.join(spec.tune.values)} {where} "
                f"({len(spec.tune.candidates())} values x {len(spec.tune.seeds)} tuning seed(s); packed: "
                f"{planner.tuning_pack or 'no'})", dry_run_table(spec, jobs, slots), ""]
        chosen = tuning.stored_choice(spec, planner.runs_root) if planner.rerun != "all" else None
    per_seed = 2 if spec.tune is not None and spec.tune.compare_shared else 1
    if isinstance(spec.seeds, Adaptive):
        from gptlab.study.adaptive import first_round

        shown = chosen if chosen or spec.tune is None else {c.name: tuning.base_values(spec, c) for c in spec.cells}
        rnd = first_round(spec, shown)
        most += len(spec.cells) * spec.seeds.max * per_seed
        jobs = plan(spec, planner.runs_root, planner.rerun, rnd.runs)
        out += [f"{'stage 2: ' if spec.tune else ''}adaptive seeds: round 1 trains {spec.seeds.start} seeds per "
                f"cell; then {spec.seeds.step} more only where a comparison is still open, up to {spec.seeds.max}"
                + ("" if chosen or spec.tune is None else " (at the values tuning chooses; shown at base values)"),
                dry_run_table(spec, jobs, slots)]
    else:
        seeds = {cell.name: spec.seed_list() for cell in spec.cells}
        if spec.tune is not None and chosen is None:
            chosen = {cell.name: tuning.base_values(spec, cell) for cell in spec.cells}
            note = " (values decided after stage 1; shown at base values)"
        else:
            note = " (tuned values from tuning.json)" if spec.tune is not None else ""
        runs = tuning.compare_runs(spec, chosen, seeds)
        most += len(runs)
        jobs = plan(spec, planner.runs_root, planner.rerun, runs)
        out += [f"stage 2: comparison{note}", dry_run_table(spec, jobs, slots)]
    out += scale_lines(spec) + ["", f"most runs this study can take: {most}"]
    return "\n".join(out)
