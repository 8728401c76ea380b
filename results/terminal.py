"""Every command's output, drawn for where it goes: the one renderer of tables on the command line.

``earshot`` and ``earshot listen`` print :class:`~earshot.results.present.Table` s through
:func:`print_table`, and only through it:

- **on a terminal wide enough**, a Rich table (bold cells bold);
- **on a terminal too narrow for it**, each row as a block of ``column: value`` lines, wrapped
  between words;
- **into a pipe or a file** (a CI log, ``| grep``), the caption, then a tab-separated header and
  one tab-separated line per row: no cell is ever wrapped, folded or cut (``inconclusi…``);
- **with --json** (inside :func:`json_document`), no table is printed: each joins one JSON
  document, display strings and the raw values behind them, written to stdout when the command
  ends; everything else the command prints (logs, progress, rules) goes to stderr.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

if TYPE_CHECKING:  # present (pandas) loads with the commands that print its tables, not with every command
    from earshot.results.present import Table

# Markup and emoji codes off: paths, specs (`./loss.py:X:`) and intervals (`[2.97, 3.05]`) print as
# written; styled text is built with rich.text.Text.
console = Console(markup=False, emoji=False)
err_console = Console(stderr=True, markup=False, emoji=False)
UNBOUNDED_WIDTH = 100_000  # characters: wider than any table, to measure its natural width

_document: dict | None = None  # the JSON document being collected (inside json_document)


def rich_table(table: Table) -> RichTable:
    """A table as a Rich table: its caption as the title, bold cells bold.

    Cells are plain text (never Rich markup), so an interval's brackets print as written.
    """
    out = RichTable(title=table.caption or None)
    for column in table.columns:
        out.add_column(column, overflow="fold")
    for i, row in enumerate(table.rows):
        out.add_row(*(Text(cell, style="bold" if (i, j) in table.bold else "") for j, cell in enumerate(row)))
    return out


def natural_width(rendered: RichTable) -> int:
    """The characters a Rich table needs to show every cell on one line."""
    unbounded = console.options.update(max_width=UNBOUNDED_WIDTH)
    return Measurement.get(console, unbounded, rendered).maximum


def _one_line(cell: str) -> str:
    return str(cell).replace("\t", " ").replace("\n", " ")


def tab_separated(table: Table) -> list[str]:
    """The lines a table is printed as into a pipe or a file: its caption (when it has one), the
    tab-separated header, then one tab-separated line per row."""
    lines = [table.caption] if table.caption else []
    return lines + ["\t".join(_one_line(c) for c in row) for row in (table.columns, *table.rows)]


def _print_blocks(table: Table) -> None:
    """A row per block of ``column: value`` lines, for a terminal narrower than the table."""
    if table.caption:
        console.print(table.caption, highlight=False, markup=False)
    for i, row in enumerate(table.rows):
        block = RichTable.grid(padding=(0, 1))  # a value's wrapped lines stay under the value
        block.add_column(no_wrap=True)
        block.add_column(overflow="fold")
        for j, (column, cell) in enumerate(zip(table.columns, row)):
            block.add_row(Text(f"  {column}:"), Text(cell, style="bold" if (i, j) in table.bold else ""))
        console.print()
        console.print(block)


def print_table(table: Table, key: str | None = None, **about) -> None:
    """Print a table where the output goes (see the module's description); under ``--json``, add it
    to the document instead, as ``key`` (a name scripts look for) with ``about`` (e.g. ``test=``)."""
    if _document is not None:
        _document["tables"].append({"key": key, **about, **table.to_json()})
        return
    if not console.is_terminal:
        for line in ["", *tab_separated(table)]:  # a blank line sets a table off from the lines before it
            console.file.write(line + "\n")  # Rich would expand the tabs
        console.file.flush()
        return
    rendered = rich_table(table)
    if natural_width(rendered) <= console.width:
        console.print(rendered)
    else:
        _print_blocks(table)


def print_text(text: str, label: str | None = None, **about) -> None:
    """Print a sentence (a note when ``label`` is given), never wrapped inside a word; under
    ``--json``, add it to the document's ``text`` instead, with ``about``."""
    if _document is not None:
        _document["text"].append({"text": text, "label": label, **about})
        return
    prefix = Text(f"{label}: ", style="yellow") if label else Text()
    console.print(prefix + Text(text), highlight=False, soft_wrap=not console.is_terminal)


def json_output() -> bool:
    """Whether tables and sentences go into a JSON document (inside :func:`json_document`)."""
    return _document is not None


@contextmanager
def json_document(enabled: bool, **fields) -> Iterator[dict | None]:
    """When ``enabled``: collect what the block prints into one JSON document (``fields``, then
    ``tables`` and ``text``), send everything else the console prints to stderr, and write the
    document to stdout when the block ends without an error (after an error, stdout stays empty).
    Yields the document, for raw values a command adds beside its tables; None when not enabled."""
    global _document
    if not enabled:
        yield None
        return
    from earshot.results.present import json_value

    _document = {**fields, "tables": [], "text": []}
    console.stderr = True
    try:
        yield _document
    finally:
        console.stderr = False
        document, _document = _document, None
    sys.stdout.write(json.dumps(json_value(document), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
