"""The config keys in `--help` (train, memory, bench) and `--print-config`: generated from the config schema
when help is shown, so the table lists exactly what the config accepts, plugin options included."""
from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from typing import Any

import click
import typer.core

CONFIG_ARGS = "[CONFIG.yaml] [OVERRIDE ...]"


def choices_of(section: str, key: str) -> tuple[Any, ...]:
    """The values a config key accepts when it is a choice (an ablation axis or a fixed set), else ()."""
    from gptlab.axes import AXES
    from gptlab.config import SECTIONS

    f = next(f for f in fields(SECTIONS[section]) if f.name == key)
    if "axis" in f.metadata:
        return tuple(AXES[f.metadata["axis"]].names())
    return tuple(f.metadata.get("choices", ()))


def spell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "-"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(map(spell, value)) + "]"
    return str(value)


def config_rows() -> list[tuple[str, str, str, str]]:
    """(key, section, default, choices) for every settable key, then the options of loaded plugins."""
    from gptlab import plugins
    from gptlab.axes import option_keys
    from gptlab.config import SECTIONS

    try:
        plugins.load_entry_points()  # installed plugins add components and options
    except Exception:  # noqa: BLE001 - a broken plugin must not break --help; using it reports the error
        pass
    rows = []
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            if "internal" in f.metadata or f.name == "vocab_size":
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f.name, section, spell(default), "|".join(map(spell, choices_of(section, f.name)))))
    rows += [(key, "model", spell(default), "plugin option") for key, default in option_keys().items()]
    return rows


def plain_table() -> str:
    rows = [("key", "section", "default", "choices"), *config_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows)


INTRO = ("Config keys (CONFIG.yaml, flat or under model/train/data/log; on the command line key=value, "
         "section.key=value or --key=value):")


class ConfigHelpCommand(typer.core.TyperCommand):
    """A command taking [CONFIG.yaml] [OVERRIDE ...]: its help ends with the table of config keys."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        if typer.core.HAS_RICH and self.rich_markup_mode is not None:  # typer printed to its console
            from rich.console import Console
            from rich.table import Table

            table = Table(title=INTRO, title_justify="left", show_edge=False, pad_edge=False, box=None)
            for column in ("key", "section", "default", "choices"):
                table.add_column(column, style="bold cyan" if column == "key" else None, overflow="fold")
            for row in config_rows():
                table.add_row(*row)
            Console(file=sys.stdout).print(table)
        else:
            with formatter.section(INTRO):
                formatter.write_text("")
                for line in plain_table().splitlines():
                    formatter.write(f"  {line}\n")
