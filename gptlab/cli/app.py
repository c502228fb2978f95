"""The `gptlab` command: a typer app whose commands are thin and hand off to plain functions."""
from __future__ import annotations

import sys
from typing import Annotated

import typer

from gptlab import __version__
from gptlab.cli import (attention_cmd, bench_cmd, diagnose_cmd, eval_cmd, generate_cmd, memory_cmd, report_cmd,
                        run_cmd, sweep_cmd, sync_cmd, train_cmd)
from gptlab.cli.common import EXTRA_ARGS, user_errors
from gptlab.cli.config_help import CONFIG_ARGS, ConfigHelpCommand

app = typer.Typer(name="gptlab", no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A research harness for ablation studies on small GPT models.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gptlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print gptlab's version and exit.")] = False,
          ) -> None:
    """A research harness for ablation studies on small GPT models."""


# commands taking [CONFIG.yaml] [OVERRIDE ...] get the raw extra arguments, that usage and the config keys' table
for command, extra in ((train_cmd.train, True), (generate_cmd.generate, False), (run_cmd.run, False),
                       (report_cmd.report, False), (sweep_cmd.sweep, False), (eval_cmd.eval, False),
                       (attention_cmd.attention, False), (memory_cmd.memory, True), (bench_cmd.bench, True),
                       (sync_cmd.sync, False)):
    shape = dict(context_settings=EXTRA_ARGS, cls=ConfigHelpCommand,
                 options_metavar=f"[OPTIONS] {CONFIG_ARGS}") if extra else {}
    app.command(command.__name__, **shape)(user_errors(command))
app.add_typer(diagnose_cmd.app)  # gptlab diagnose coord-check


# click's exceptions, from whichever click typer parses with (its own vendored copy in recent typers)
_CLICK_ERRORS = sys.modules[typer.BadParameter.__module__]


def _command_named_in(args: list[str]) -> str:
    """'gptlab report' when the arguments name a command (an error click raised without a context)."""
    names = {c.name for c in app.registered_commands}
    first = next((a for a in args if not a.startswith("-")), None)
    return f"gptlab {first}" if first in names else "gptlab"


def main() -> None:
    """The console entry point. A usage error that click finds (an unknown option or command, a misspelt
    choice, a missing argument) is one line on stderr and exit code 2, like every other bad input; a bare
    command still shows its help."""
    try:
        code = app(standalone_mode=False)
    except getattr(_CLICK_ERRORS, "NoArgsIsHelpError", ()):
        app()  # typer's own help page, exit code 2
    except _CLICK_ERRORS.ClickException as err:
        ctx = getattr(err, "ctx", None)
        where = ctx.command_path if ctx is not None else _command_named_in(sys.argv[1:])
        message = " ".join(err.format_message().split())
        print(f"error: {where}: {message} (see '{where} --help')", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
