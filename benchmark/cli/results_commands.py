"""``earshot report``, ``earshot compare`` and ``earshot listen analyze``.

The CLI composes the packages: it reads the ratings (a file, or the listening database
through ``listening_app.store``) and hands ``results`` plain frames in the columns of
``earshot listen export``; ``results`` never opens the database. Every table printed here
comes from :mod:`earshot.results.present`, the same tables the report and the admin page show.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.text import Text

from earshot.benchmark.cli.render import console, fail, json_document, print_table, print_text

JSON_HELP = "Print one JSON document (the tables as shown, with the numbers behind them) instead; logs go to stderr."


def _sqlite_file(db_url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, None for other databases."""
    match = re.match(r"^sqlite:///(.+)$", db_url)
    return Path(match.group(1)) if match else None


def _database_url(db: str | None) -> str:
    """``--db`` as a database URL (a plain path is a SQLite file); a malformed one fails in one line."""
    from earshot.listening_app.store import StoreError, database_url

    try:
        return database_url(db)
    except StoreError as exc:
        fail(str(exc))


def run_listening_tests(run_dir: Path, db: str | None, test: str | None) -> tuple[list[tuple[str, pd.DataFrame]],
                                                                                    list[str]]:
    """The listening tests made from a run, as ``[(name, ratings table)]``, and notes on what was not found.

    A missing SQLite file is not created; a database that cannot be read becomes a note, so
    the report is still written.
    """
    url = _database_url(db)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():
        return [], [f"no listening test: no database at {sqlite_file} (run the listening app, or pass --ratings FILE)"]
    from earshot.listening_app.store import export_frame, tests_for_run

    try:
        names = [test] if test else tests_for_run(url, run_dir)
        if not names:
            return [], [f"no listening test has been created from this run in {url}"]
        return [(name, export_frame(url, name)) for name in names], []
    except Exception as exc:  # a database from another version, a locked file: say so, keep the report
        return [], [f"no listening test: reading {url} failed ({exc.__class__.__name__}: {exc})"]


def report(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/<run-id>)."),
    format: str = typer.Option("html", "--format", help="html (one self-contained file), md or latex."),
    db: Optional[str] = typer.Option(None, "--db", help="Listening-test database: a SQLite file's path or a URL "
                                                        "(default: $EARSHOT_DB or the listening app's SQLite file)."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", help="Ratings CSV (long or webMUSHRA) instead of "
                                                                   "the database."),
    test: Optional[str] = typer.Option(None, "--test", help="Only this listening test (default: every test of "
                                                            "the run)."),
    listening: bool = typer.Option(True, "--listening/--no-listening", help="Include the listening test."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead (the hypotheses and every "
                                                      "table the report shows, with the numbers behind them, and "
                                                      "the report's path); the report is written as usual."),
    hypotheses: Optional[Path] = typer.Option(None, "--hypotheses", help="A YAML file of declared hypotheses "
                                              "(default: those recorded in the run, else the seed's three claims)."),
    latent_bits: int = typer.Option(8, "--latent-bits", min=1, help="Bits per latent of a trained loss's nominal "
                                    "bitrate (latents per second × this) on the report's bitrate axis."),
) -> None:
    """Write RUN/report/index.html (or index.md / index.tex): metrics, declared hypotheses, listening test,
    audio; prints the hypotheses checked."""
    from earshot.benchmark.cli.app import checked_hypotheses
    from earshot.results import present
    from earshot.results.hypotheses import HypothesisError, declared_for_run
    from earshot.results.listening import RatingsError
    from earshot.results.present import Table
    from earshot.results.report import FORMATS, build_sections, write_sections
    from earshot.results.store import load_run

    try:
        run = load_run(run_dir)
        if hypotheses is not None:
            checked_hypotheses(hypotheses, run.losses)
        declaration = declared_for_run(run_dir, hypotheses)
    except (FileNotFoundError, HypothesisError) as exc:
        fail(str(exc))

    if not listening:
        tests, notes = None, ["listening test not included (--no-listening)"]
    elif ratings is not None:
        tests, notes = ratings, []
    else:
        tests, notes = run_listening_tests(run_dir, db, test)
    if format not in FORMATS:
        fail(f"unknown report format {format!r} (one of {', '.join(FORMATS)})")
    with json_document(as_json, command="report", run=str(run_dir), format=format) as document:
        try:
            built, sections = build_sections(run_dir, ratings=tests, listening_notes=notes, declaration=declaration,
                                             latent_bits=latent_bits)
            path = write_sections(built, sections, format)
        except (FileNotFoundError, ValueError, RatingsError) as exc:
            fail(str(exc))
        # The hypotheses as the report's claims section shows them (verdicts, undertrained marks and all).
        for table in (b for s in sections for b in s.blocks
                      if isinstance(b, Table) and b.columns == present.HYPOTHESES_COLUMNS):
            print_table(table, key="hypotheses")
        if document is not None:
            document["report"] = str(path)
            document["sections"] = _sections_json(sections)
        console.print(Text.assemble("report: ", (str(path), "bold")))


def _sections_json(sections) -> list[dict]:
    """The report's sections as JSON: each one's title, its tables (display rows and raw records) and
    its notes and paragraphs, in the order the report shows them."""
    from earshot.results.present import Table
    from earshot.results.report import Note

    out = []
    for section in sections:
        tables = [block.to_json() for block in section.blocks if isinstance(block, Table)]
        text = [{"text": block.text, "label": block.label} if isinstance(block, Note) else {"text": block}
                for block in section.blocks if isinstance(block, (Note, str))]
        out.append({"anchor": section.anchor, "title": section.title, "tables": tables, "text": text})
    return out


def compare(
    run_a: Path = typer.Argument(..., help="The first run directory (A)."),
    run_b: Path = typer.Argument(..., help="The second run directory (B)."),
    category: str = typer.Option("all", help="A category, or all (every category pooled)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write every category's comparison to this CSV."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Two runs side by side: each loss's metric means in A and B, and B − A."""
    from earshot.results.aggregate import compare_runs, metric_order
    from earshot.results.present import compare_table
    from earshot.results.store import load_run

    try:
        a, b = load_run(run_a), load_run(run_b)
    except FileNotFoundError as exc:
        fail(str(exc))
    for run in (a, b):
        if run.metrics.empty:
            fail(f"{run.path}: no metrics.parquet (run earshot eval {run.path} first)")
    table = compare_runs(a.metrics, b.metrics)
    if csv:
        table.to_csv(csv, index=False)
    if category not in set(table["category"]):
        fail(f"no metrics for category {category!r} (have: all, {', '.join(sorted(set(table['category']) - {'all'}))})")
    order = metric_order(pd.concat([a.metrics, b.metrics], ignore_index=True), {**b.metric_info, **a.metric_info})
    with json_document(as_json, command="compare", run_a=str(run_a), run_b=str(run_b), category=category):
        print_table(compare_table(table, category, a.run_id, b.run_id, order, {**b.metric_info, **a.metric_info}),
                    key="compare")
        if csv:
            console.print(f"wrote {csv}")


def analyze(
    test: Optional[str] = typer.Argument(None, help="Test name in the database (default: every test)."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", help="Ratings CSV (long or webMUSHRA) instead of "
                                                                   "the database."),
    db: Optional[str] = typer.Option(None, "--db", help="Database: a SQLite file's path or a URL (default: "
                                                        "$EARSHOT_DB or the app's SQLite)."),
    blocks: str = typer.Option("rater", help="Unit of the tests: rater (default) or trial (rater × item)."),
    mixed: bool = typer.Option(False, "--mixed/--no-mixed", help="Also fit the linear mixed model."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Post-screening, MUSHRA means with CIs, Friedman and pairwise Wilcoxon tests; for every other test type its
    own analysis (ABX: proportion correct per pair; A/B: preference shares and a Bradley–Terry scale; ranking:
    mean ranks and Friedman; MOS: means with CIs over raters and items), and each rater's attention checks."""
    from earshot.results.analyses import analyze_test
    from earshot.results.listening import RatingsError, analyze_ratings, read_ratings

    if ratings is not None:
        try:
            frames = [(ratings.name, read_ratings(ratings))]
            orders = {}  # a file names no run: systems alphabetically
        except RatingsError as exc:
            fail(str(exc))
    else:
        url = _database_url(db)
        sqlite_file = _sqlite_file(url)
        if sqlite_file is not None and not sqlite_file.is_file():
            fail(f"no listening database at {sqlite_file}; pass --db URL or --ratings FILE")
        from earshot.listening_app.store import export_frame, list_tests
        from earshot.listening_app.summary import system_order

        frame = export_frame(url, test)
        frames = [(test, frame)] if test else [(str(name), rows) for name, rows in frame.groupby("test")]
        # Systems in the order of the run each test was made from, as the report and admin page list them.
        orders = {info.name: system_order(info.run_dir) for info in list_tests(url)}
    if not frames:
        fail("no ratings found")
    with json_document(as_json, command="listen analyze", blocks=blocks, tests={}) as document:
        for name, frame in frames:
            try:
                other = analyze_test(frame, name, orders.get(name))
            except ValueError as exc:
                fail(str(exc))
            if other is not None:
                _print_other(other)
                if document is not None:
                    document["tests"][name] = {"type": other.type, "notes": other.notes, **other.numbers}
                continue
            result = analyze_ratings(frame, name, blocks=blocks, with_mixed_model=mixed,
                                     system_order=orders.get(name))
            _print_analysis(name, result, blocks)
            if document is not None:  # the numbers behind the sentences
                document["tests"][name] = {"friedman": result.friedman, "notes": result.notes,
                                           "variance": result.mixed["variance"] if result.mixed else None}


def _print_other(result) -> None:
    """One test of a type other than MUSHRA (:mod:`results.analyses`): its notes, tables and sentences."""
    from earshot.results.present import Table

    console.rule(f"test {result.name} ({result.title})")
    for note in result.notes:
        print_text(note, label="note", test=result.name)
    for key, part in result.parts:
        if isinstance(part, Table):
            print_table(part, key=key, test=result.name)
        else:
            print_text(part, test=result.name)


def _print_analysis(name: str, result, blocks: str) -> None:
    """One listening test's analysis: notes, post-screening, MUSHRA tables, Friedman, pairwise tests
    and the mixed model, each table and sentence labelled with the test's name under --json."""
    from earshot.results import present

    console.rule(f"test {name}")
    for note in result.notes:
        print_text(note, label="note", test=name)
    if result.screening is None:
        return
    print_text(present.screening_sentence(result.screening), test=name)
    print_table(present.screening_table(result.screening), key="screening", test=name)
    few = present.too_few_raters_sentence(result.summary)
    if few:
        print_text(few, label="note", test=name)
    for table in present.mushra_tables(result.summary):
        print_table(table, key="mushra", test=name)
    print_text(present.friedman_sentence(result.friedman, blocks), test=name)
    if len(result.pairwise):
        print_table(present.pairwise_table(result.pairwise, blocks), key="pairwise", test=name)
    if result.mixed is not None:
        if len(result.mixed["fixed"]):
            print_table(present.mixed_model_table(result.mixed["fixed"]), key="mixed-model", test=name)
            print_text(present.variance_sentence(result.mixed["variance"]), test=name)
        if result.mixed["note"]:
            print_text(result.mixed["note"], label="note", test=name)
