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
    from gptlab.runner.execute import Study, conflict_error, plan
    from gptlab.runner.spec import load_spec
    from gptlab.jobs.view import make_view

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
    jobs_planned = plan(loaded, runs, rerun)
    conflict = conflict_error(jobs_planned, runs)
    if conflict and not dry_run:
        raise conflict
    if jobs == "auto":
        from gptlab.runner.packing import auto_jobs

        n_jobs = auto_jobs(loaded, slots)
        print(f"--jobs auto: {n_jobs} at once on {', '.join(slots)}")
    else:
        n_jobs = int(jobs)
    if dry_run:
        print(dry_run_table(loaded, jobs_planned, slots))
        if pack:
            from gptlab.pack.jobs import describe_packs

            todo = [j for j in jobs_planned if not j.action.startswith("skip") and j.action != "conflict"]
            print("\n".join(describe_packs(todo, pack, n_jobs)) or "--pack: nothing to pack")
        return
    if launcher == "submitit":
        from gptlab.runner.slurm import run_with_submitit

        code = run_with_submitit(loaded, jobs_planned, runs, wandb)
    elif launcher == "local":
        study = Study(loaded, jobs_planned, runs, n_jobs=n_jobs, slots=slots, wandb=wandb, fail_fast=fail_fast,
                      view=make_view(), pack=pack)
        code = study.execute()
    else:
        raise UserError(f"invalid --launcher '{launcher}'", key="--launcher", fix="use local or submitit")
    if code:
        raise typer.Exit(code=code)


def dry_run_table(spec, jobs, slots: list[str]) -> str:  # noqa: ANN001
    from gptlab.overrides import format_value

    rows = []
    for i, job in enumerate(jobs):
        diff = " ".join(f"{k}={format_value(v)}" for k, v in job.run.overrides.items()) or "-"
        state = job.describe()
        device = "cpu" if slots[i % len(slots)] == "cpu" else f"cuda:{slots[i % len(slots)]}"
        rows.append((job.run.name, diff, device, state))
    headers = ("run", "differs from base", "device", "state")
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    todo = sum(not j.action.startswith("skip") for j in jobs)
    lines = [f"{spec.name}: {len(jobs)} runs ({todo} to execute) from {spec.path}", fmt.format(*headers),
             fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)
