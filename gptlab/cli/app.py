"""The `gptlab` command: a typer app whose commands are thin and hand off to plain functions."""
from __future__ import annotations

import typer

from gptlab.cli.common import EXTRA_ARGS, user_errors
from gptlab.cli.generate_cmd import generate
from gptlab.cli.train_cmd import train

app = typer.Typer(name="gptlab", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="A research harness for ablation studies on small GPT models.")

app.command("train", context_settings=EXTRA_ARGS)(user_errors(train))
app.command("generate")(user_errors(generate))


def _register_optional() -> None:
    """Commands whose modules are built by other work streams; absent ones are simply not offered."""
    import importlib

    for module, name, extra in [("gptlab.cli.run_cmd", "run", False), ("gptlab.cli.report_cmd", "report", False),
                                ("gptlab.cli.sweep_cmd", "sweep", False), ("gptlab.cli.eval_cmd", "eval", False),
                                ("gptlab.cli.attention_cmd", "attention", False),
                                ("gptlab.cli.memory_cmd", "memory", True), ("gptlab.cli.bench_cmd", "bench", True)]:
        try:
            fn = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        app.command(name, context_settings=EXTRA_ARGS if extra else None)(user_errors(fn))


_register_optional()


def main() -> None:
    app()
