"""`gptlab bench [CONFIG.yaml] [OVERRIDE ...]`: step time, tokens/s, MFU, memory, each speed feature on/off."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated

import typer

from gptlab.cli.common import split_config_and_overrides
from gptlab.errors import UserError
from gptlab.overrides import parse_overrides, resolve
from gptlab.yamlio import atomic_write_json


def bench(ctx: typer.Context,
          steps: Annotated[int, typer.Option(help="Timed steps per measurement.")] = 50,
          warmup: Annotated[int, typer.Option(help="Untimed warm-up steps (compilation, caches).")] = 10,
          features: Annotated[bool, typer.Option(help="Also time with each speed feature off.")] = True,
          eager: Annotated[bool, typer.Option(help="Also time a plain eager PyTorch loop.")] = True,
          overhead: Annotated[bool, typer.Option(help="Measure logging + diagnostics overhead in real runs.")]
          = False,
          grid: Annotated[bool, typer.Option("--grid", help="Measure a packed vs sequential grid of runs.")] = False,
          grid_runs: Annotated[int, typer.Option(help="Runs in the --grid study.")] = 4,
          jobs: Annotated[int, typer.Option(help="Runs at once in the packed --grid study.")] = 4,
          pack: Annotated[bool, typer.Option("--pack", help="Only this: runs per hour of a seed study packed "
                                             "(--pack seeds) vs processes (--jobs 2) vs sequential (--jobs 1).")]
          = False,
          pack_seeds: Annotated[int, typer.Option(help="Seeds in the --pack study.")] = 6,
          pack_repeats: Annotated[int, typer.Option(help="Repeats of each --pack arm (medians reported).")] = 3,
          out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
          ) -> None:
    """Benchmark the training step of a config (default: the baby GPT) on this machine."""
    from gptlab.bench.features import feature_variants
    from gptlab.bench.measure import measure_row

    if steps < 1 or warmup < 0:
        raise UserError("--steps must be >= 1 and --warmup >= 0", fix="e.g. --steps 50 --warmup 10")
    config_file, rest = split_config_and_overrides(list(ctx.args))
    cfg, flat = resolve(config_file, parse_overrides(rest))
    if pack:
        from gptlab.pack.bench import run_pack_bench

        run_pack_bench(flat, pack_seeds, pack_repeats, _machine(), out)
        return
    # rows that compile run in a new process: one row's graphs and caches never carry into the next
    timings = [measure_row("train_step", cfg, "gptlab (all features as configured)", steps, warmup)]
    skipped = []
    if features:
        for name, off_cfg in feature_variants(cfg):
            if off_cfg is None:
                skipped.append(name)
            else:
                timings.append(measure_row("train_step", off_cfg, f"{name} off", steps, warmup))
    if eager:
        timings.append(measure_row("eager_loop", cfg, "plain eager loop", steps, warmup))
    report = {"machine": _machine(), "config": flat, "steps": steps, "warmup": warmup,
              "results": [t.as_dict() for t in timings], "features_off_on_this_device": skipped}
    _print_table(timings)
    if skipped:
        print(f"not measured (already off on this device): {', '.join(skipped)}")
    if overhead:
        from gptlab.bench.whole import logging_overhead

        report["logging_overhead"] = logging_overhead(cfg)
        print(f"logging + basic diagnostics overhead: {report['logging_overhead']['overhead_pct']:+.2f}% "
              f"({report['logging_overhead']['tokens_per_s']})")
    if grid:
        from gptlab.bench.whole import grid_ratio

        report["grid"] = grid_ratio(flat, grid_runs, jobs)
        g = report["grid"]
        print(f"grid of {g['runs']} runs: " + ", ".join(f"{k} {v['wall_s']}s" for k, v in g["walls"].items())
              + f" -> {g['speedup']}x")
    if out:
        atomic_write_json(out, report)
        print(f"wrote {out}")


def _machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": str(torch.__version__),
            "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _print_table(timings) -> None:  # noqa: ANN001
    head = (f"{'measurement':<40} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'CPU ms':>7} {'tok/s':>10} "
            f"{'MFU':>6} {'peak MB':>8} {'warm-up s':>9} {'graphs':>6}")
    print(head)
    print("-" * len(head))
    for t in timings:
        mfu = f"{100 * t.mfu:.1f}%" if t.mfu is not None else "-"
        mem = f"{t.peak_mem_mb:.0f}" if t.peak_mem_mb is not None else "-"
        graphs = "-" if t.compiled_graphs is None else str(t.compiled_graphs)
        print(f"{t.label:<40} {t.median_ms:>10.2f} {t.min_ms:>8.2f} {t.max_ms:>8.2f} {t.cpu_ms:>7.2f} "
              f"{t.tokens_per_s:>10.0f} {mfu:>6} {mem:>8} {t.warmup_s:>9.1f} {graphs:>6}")
