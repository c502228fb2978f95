"""`gptlab run SPEC.yaml`: every run an experiment spec expands to, skipping finished ones."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gptlab.cli.common import PrintConfigOpt, RunsOpt, WandbOpt, check_wandb_mode, choice, echo_config, parse_sets
from gptlab.errors import UserError


def run(spec: Annotated[Path, typer.Argument(help="Experiment spec (experiments/*.yaml).")],
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="KEY=VALUE applied to every run (e.g. --set max_steps=200 to shrink for a CPU).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the runs and their state; run nothing.")]
        = False,
        jobs: Annotated[str, typer.Option(help="Runs executed at once: a number, or auto (from memory and "
                                                "devices: several small runs share each GPU).")] = "1",
        devices: Annotated[str | None, typer.Option(
            help="Devices to spread runs over, e.g. 0,1 or cpu (default: every visible GPU, else CPU).")] = None,
        rerun: Annotated[Optional[choice(("failed", "all"))], typer.Option(help="Also rerun from scratch: failed (failed and diverged) "
                                                       "or all.")] = None,
        fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed run.")] = False,
        pack: Annotated[Optional[choice(("seeds", "auto"))], typer.Option(
            help="seeds: runs that differ only in seed train as one stacked model in one process; auto: also "
                 "runs that differ only in lr, min_lr, lr_schedule, warmup_steps, weight_decay, betas, grad_clip, "
                 "dropout.")] = None,
        launcher: Annotated[choice(("local", "submitit")), typer.Option(
            help="local (subprocesses here) or submitit (Slurm jobs).")]
        = "local",
        runs: RunsOpt = Path("runs"),
        wandb: WandbOpt = None,
        print_config: PrintConfigOpt = False,
        ) -> None:
    """Run every variant x grid x seed of an experiment spec; resumable and crash-isolated."""
    from gptlab.jobs.devices import parse_devices
    from gptlab.runner.dryrun import dry_run_table, scale_lines
    from gptlab.runner.execute import conflict_error, plan
    from gptlab.runner.spec import load_spec

    if pack not in (None, "seeds", "auto"):
        raise UserError(f"invalid --pack '{pack}'", key="--pack", fix="use --pack seeds or --pack auto")
    if pack and launcher != "local":
        raise UserError("--pack runs packs as local processes", key="--pack", fix="drop --pack or use --launcher local")
    if rerun not in (None, "failed", "all"):
        raise UserError(f"invalid --rerun '{rerun}'", key="--rerun", fix="use --rerun failed or --rerun all")
    if not (jobs == "auto" or (jobs.isdigit() and int(jobs) >= 1)):
        raise UserError(f"invalid --jobs '{jobs}'", key="--jobs", fix="give a number >= 1 or auto")
    check_wandb_mode(wandb)
    sets = parse_sets(set_)
    loaded = load_spec(spec, sets)
    if print_config:  # every run's config, as `gptlab train` would resolve it; nothing is written
        for planned in loaded.runs:
            echo_config(planned.config.replace(wandb=wandb) if wandb else planned.config,
                        runs / loaded.name / planned.name)
        return
    slots = parse_devices(devices)
    if jobs == "auto":
        from gptlab.runner.packing import auto_jobs

        n_jobs = auto_jobs(loaded, slots)
        print(f"--jobs auto: {n_jobs} at once on {', '.join(slots)}")
    else:
        n_jobs = int(jobs)
    if loaded.in_rounds:
        from gptlab.study.planner import Planner

        planner = Planner(loaded, runs, rerun=rerun, pack=pack, launcher=launcher)
        if dry_run:
            from gptlab.study.describe import describe_study

            print(describe_study(planner, slots, n_jobs))
            return
        code = planner.execute(lambda rnd, rerun_of: _execute(loaded, plan(loaded, runs, rerun, rnd.runs, rerun_of),
                                                              runs, launcher, n_jobs, slots, wandb, fail_fast,
                                                              rnd.pack, title=rnd.title))
        if code:
            raise typer.Exit(code=code)
        return
    jobs_planned = plan(loaded, runs, rerun)
    conflict = conflict_error(jobs_planned, runs)
    if conflict and not dry_run:
        raise conflict
    if dry_run:
        print(dry_run_table(loaded, jobs_planned, slots))
        print("\n".join(scale_lines(loaded)))
        if pack:
            from gptlab.pack.jobs import describe_packs

            todo = [j for j in jobs_planned if not j.action.startswith("skip") and j.action != "conflict"]
            print("\n".join(describe_packs(todo, pack, n_jobs)) or "--pack: nothing to pack")
        return
    code = _execute(loaded, jobs_planned, runs, launcher, n_jobs, slots, wandb, fail_fast, pack)
    if code:
        raise typer.Exit(code=code)


def _execute(spec, jobs, runs: Path, launcher: str, n_jobs: int, slots: list[str], wandb: str | None,  # noqa: ANN001
             fail_fast: bool, pack: str | None, title: str | None = None) -> int:
    """Hand planned jobs to the job pool (local) or to Slurm (submitit); the exit code."""
    from gptlab.jobs.view import make_view
    from gptlab.runner.execute import Study, conflict_error

    conflict = conflict_error(jobs, runs)
    if conflict:
        raise conflict
    if launcher == "submitit":
        from gptlab.runner.slurm import run_with_submitit

        return run_with_submitit(spec, jobs, runs, wandb)
    if launcher != "local":
        raise UserError(f"invalid --launcher '{launcher}'", key="--launcher", fix="use local or submitit")
    view = make_view()
    if title:
        view.message(f"== {title}")
        view.context = f"{title} | "
    return Study(spec, jobs, runs, n_jobs=n_jobs, slots=slots, wandb=wandb, fail_fast=fail_fast, view=view,
                 pack=pack).execute()
