"""What every command shares: bad input becomes one line on stderr and exit code 2."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypeVar

import typer
import yaml

from gptlab.errors import UserError
from gptlab.overrides import parse_overrides

F = TypeVar("F", bound=Callable[..., Any])

def config_choices(key: str) -> list[str]:
    """The choices of a config key (one owner: the config schema), for an option that sets it."""
    from gptlab.cli.config_help import choices_of
    from gptlab.config import KEY_SECTION

    return [str(c) for c in choices_of(KEY_SECTION[key], key)]


RunsOpt = Annotated[Path, typer.Option("--runs", help="Run store root.")]
def choice(names: Any) -> Any:
    """A typer option type whose values are `names`: shown in --help, anything else exits 2."""
    return Literal[tuple(str(n) for n in names)]


WandbOpt = Annotated[Optional[choice(config_choices("wandb"))], typer.Option(
    "--wandb", show_default=False,
    help="W&B mode: auto (online with credentials, else offline), online, offline, disabled "
         "(default: the config's log.wandb, auto).")]
PrintConfigOpt = Annotated[bool, typer.Option(
    "--print-config", help="Print the resolved config (YAML) and exit; nothing is written.")]

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def user_errors(fn: F) -> F:
    """Print a UserError as `error: <file>:<line>: <key>: <message> (<fix>)` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err.one_line()}", file=sys.stderr)
            raise typer.Exit(code=2) from None
        except OSError as err:  # a path the user gave cannot be read or written (an --out under a file, ...)
            where = err.filename or "a path given on the command line"
            print(f"error: {where}: {err.strerror or err} (check the path and its permissions)", file=sys.stderr)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def split_config_and_overrides(args: list[str]) -> tuple[str | None, list[str]]:
    """The optional CONFIG.yaml comes first; everything else is an override."""
    if args and not args[0].startswith("-") and "=" not in args[0]:
        if not args[0].endswith((".yaml", ".yml")):
            raise UserError(f"'{args[0]}' is neither a .yaml config file nor a key=value override",
                            fix="give CONFIG.yaml first, then key=value overrides")
        return args[0], args[1:]
    return None, args


def check_wandb_mode(mode: str | None) -> None:
    if mode not in (None, "auto", "online", "offline", "disabled"):
        raise UserError(f"invalid --wandb '{mode}'", key="--wandb", fix="use auto, online, offline or disabled")


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` options (repeatable) as overrides."""
    sets: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"cannot read --set '{item}'", key="--set", fix="write --set key=value")
        sets.update(parse_overrides([item]))
    return sets


def echo_config(config: Any, where: str | Path) -> None:
    """`--print-config`: one run's resolved config as YAML, headed by the run directory it would write."""
    typer.echo(f"# {where}")
    typer.echo(yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False).rstrip())


def complete_experiments(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for EXPERIMENT arguments: the experiments in the run store (--runs, else runs/)."""
    root = Path(ctx.params.get("runs") or "runs")
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(incomplete))
