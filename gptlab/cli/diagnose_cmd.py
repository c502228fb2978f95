"""`gptlab diagnose ...`: checks of a configuration that train it briefly, outside any run store.

    gptlab diagnose coord-check [CONFIG.yaml] [OVERRIDE ...] --widths 64,128,256 --steps 4 --out DIR
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gptlab.cli.common import EXTRA_ARGS, split_config_and_overrides, user_errors
from gptlab.cli.config_help import CONFIG_ARGS, ConfigHelpCommand
from gptlab.errors import UserError
from gptlab.overrides import parse_overrides, resolve

app = typer.Typer(name="diagnose", no_args_is_help=True,
                  help="Diagnostics of a configuration that train it briefly (e.g. μP's coordinate check).")


@app.command("coord-check", context_settings=EXTRA_ARGS, cls=ConfigHelpCommand,
             options_metavar=f"[OPTIONS] {CONFIG_ARGS}")
@user_errors
def coord_check(ctx: typer.Context,
                widths: Annotated[str, typer.Option(
                    help="Comma-separated widths (n_embd); each keeps the config's head size, so n_head = "
                         "width / head size.")] = "64,128,256",
                steps: Annotated[int, typer.Option(help="Training steps at each width.")] = 4,
                out: Annotated[Path, typer.Option(help="Folder for coord_check.csv and coord_check.png.")]
                = Path("coord_check"),
                ) -> None:
    """μP's coordinate check (Yang et al. 2022): every layer's mean |activation| against width after each of
    a few training steps; flat under parametrization=mup, growing under standard."""
    from gptlab.diagnostics.coord_check import coord_check as run_check
    from gptlab.diagnostics.coord_check import figure, summary_lines, write_csv

    config_file, rest = split_config_and_overrides(list(ctx.args))
    cfg, _ = resolve(config_file, parse_overrides(rest))
    if steps < 1:
        raise UserError("--steps must be at least 1", key="--steps", fix="give 1 or more")
    result = run_check(cfg, _widths(widths), steps)
    print("\n".join(summary_lines(result)))
    print(write_csv(result, out / "coord_check.csv"))
    print(figure(result, out / "coord_check.png"))


def _widths(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if len(values) < 2 or min(values) < 1 or len(set(values)) != len(values):
        raise UserError(f"invalid widths '{text}'", key="--widths",
                        fix="give two or more distinct positive widths, e.g. --widths 64,128,256")
    return sorted(values)
