"""The CLI's output: errors here; tables, sentences and --json through :mod:`earshot.results.terminal`,
the one renderer ``earshot`` and ``earshot listen`` share (Rich where a table fits a terminal, plain
lines in a pipe or a narrow terminal, one JSON document with --json)."""

from __future__ import annotations

import typer
from rich.text import Text

from earshot.results.terminal import console, err_console, json_document, json_output, print_table, print_text

__all__ = ["console", "err_console", "fail", "json_document", "json_output", "print_table", "print_text"]


def fail(message: str) -> None:
    """Print ``error: message`` to stderr; raises typer.Exit(2)."""
    err_console.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False, soft_wrap=True)
    raise typer.Exit(2)
