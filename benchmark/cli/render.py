"""The CLI's output: one console, errors, and the presentation layer's tables drawn with Rich."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

if TYPE_CHECKING:  # results (pandas, scipy) loads with the commands that print its tables, not with every command
    from earshot.results.present import Table

console = Console()
err_console = Console(stderr=True)
UNBOUNDED_WIDTH = 100_000  # characters: wider than any table, to measure its natural width


def fail(message: str) -> None:
    """Print ``error: message`` to stderr; raises typer.Exit(2)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def rich_table(table: Table) -> RichTable:
    """A :class:`results.present.Table` as a Rich table: its caption as the title, bold cells bold.

    Cells are plain text (never Rich markup), so an interval's brackets print as written.
    """
    out = RichTable(title=table.caption or None)
    for column in table.columns:
        out.add_column(column, overflow="fold")
    for i, row in enumerate(table.rows):
        out.add_row(*(Text(cell, style="bold" if (i, j) in table.bold else "") for j, cell in enumerate(row)))
    return out


def print_table(table: Table) -> None:
    """Print a table; into a pipe or a file at its full width, so no cell is wrapped or cut."""
    rendered = rich_table(table)
    if console.is_terminal:
        console.print(rendered)
        return
    unbounded = console.options.update(max_width=UNBOUNDED_WIDTH)
    width, console.width = console.width, max(console.width, Measurement.get(console, unbounded, rendered).maximum)
    try:
        console.print(rendered)
    finally:
        console.width = width
