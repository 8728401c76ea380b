"""Command functions for ``earshot report``, ``earshot compare`` and ``earshot listen analyze``.

Plain Typer command functions, thin over :mod:`earshot.results.report`, :mod:`earshot.results.aggregate`
and :mod:`earshot.results.listening`; ``benchmark.cli.app`` registers them on its app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def report(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/<run-id>)."),
    format: str = typer.Option("html", "--format", help="html (one self-contained file), md or latex."),
    db: Optional[str] = typer.Option(None, "--db", help="Listening-test database URL (default: $EARSHOT_DB or "
                                                        "the listening app's SQLite file)."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", help="Ratings CSV (long or webMUSHRA) instead of "
                                                                   "the database."),
    test: Optional[str] = typer.Option(None, "--test", help="Only this listening test (default: every test of "
                                                            "the run)."),
    listening: bool = typer.Option(True, "--listening/--no-listening", help="Include the listening test."),
) -> None:
    """Write RUN/report/index.html (or index.md / index.tex): metrics, listening test, audio."""
    from earshot.results.listening import RatingsError
    from earshot.results.report import write_report

    try:
        path = write_report(run_dir, format=format, ratings=ratings, db_url=db, test=test,
                            with_listening=listening)
    except (FileNotFoundError, ValueError, RatingsError) as exc:
        _fail(str(exc))
    console.print(f"report: [bold]{path}[/]")


def compare(
    run_a: Path = typer.Argument(..., help="The first run directory (A)."),
    run_b: Path = typer.Argument(..., help="The second run directory (B)."),
    category: str = typer.Option("all", help="A category, or all (every category pooled)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write every category's comparison to this CSV."),
) -> None:
    """Two runs side by side: each loss's metric means in A and B, and B − A."""
    from earshot.results.aggregate import compare_runs, metric_order
    from earshot.results.report import fmt, fmt_ci
    from earshot.results.store import load_run

    try:
        a, b = load_run(run_a), load_run(run_b)
    except FileNotFoundError as exc:
        _fail(str(exc))
    for run in (a, b):
        if run.metrics.empty:
            _fail(f"{run.path}: no metrics.parquet (run earshot eval {run.path} first)")
    table = compare_runs(a.metrics, b.metrics)
    if csv:
        table.to_csv(csv, index=False)
    rows = table[table["category"] == category]
    if rows.empty:
        _fail(f"no metrics for category {category!r} (have: all, {', '.join(sorted(set(table['category']) - {'all'}))})")
    order = {name: i for i, name in enumerate(metric_order(_concat(a.metrics, b.metrics)))}
    rows = rows.assign(_o=rows["metric"].map(order)).sort_values(["_o", "loss"])
    out = Table("metric", "loss", f"A: {a.run_id}", f"B: {b.run_id}", "B − A",
                title=f"{category}: mean [95 % CI] over seeds × items")
    for _, r in rows.iterrows():
        out.add_row(r["metric"], r["loss"], fmt_ci(r["mean_a"], r["ci_low_a"], r["ci_high_a"]),
                    fmt_ci(r["mean_b"], r["ci_low_b"], r["ci_high_b"]), fmt(r["difference"]))
    console.print(out)
    if csv:
        console.print(f"wrote {csv}")


def _concat(*frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def analyze(
    test: Optional[str] = typer.Argument(None, help="Test name in the database (default: every test)."),
    ratings: Optional[Path] = typer.Option(None, "--ratings", help="Ratings CSV (long or webMUSHRA) instead of "
                                                                   "the database."),
    db: Optional[str] = typer.Option(None, "--db", help="Database URL (default: $EARSHOT_DB or the app's SQLite)."),
    blocks: str = typer.Option("rater", help="Unit of the tests: rater (default) or trial (rater × item)."),
    mixed: bool = typer.Option(False, "--mixed/--no-mixed", help="Also fit the linear mixed model."),
) -> None:
    """Post-screening, MUSHRA means with CIs, Friedman and pairwise Wilcoxon tests."""
    from earshot.results.listening import RatingsError, analyze_ratings, read_ratings
    from earshot.results.report import _sqlite_file, default_db_url, fmt, fmt_ci, fmt_p, p_text

    try:
        if ratings is not None:
            frames = [(ratings.name, read_ratings(ratings))]
        else:
            try:
                from earshot.listening_app.store import ratings_frame
            except ImportError as exc:
                _fail(f"the listening app's store cannot be imported ({exc}); pass --ratings FILE")
            url = db or default_db_url()
            sqlite_file = _sqlite_file(url)
            if sqlite_file is not None and not sqlite_file.is_file():
                _fail(f"no listening database at {sqlite_file}; pass --db URL or --ratings FILE")
            frame = ratings_frame(url, test)
            if "test" in frame.columns and test is None:
                frames = [(str(name), rows) for name, rows in frame.groupby("test")]
            else:
                frames = [(test or "ratings", frame)]
    except RatingsError as exc:
        _fail(str(exc))
    if not frames:
        _fail("no ratings found")
    for name, frame in frames:
        result = analyze_ratings(frame, name, blocks=blocks, with_mixed_model=mixed)
        console.rule(f"test {name}")
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        if result.screening is None:
            continue
        s = result.screening
        console.print(f"{s.rules}\nraters: {s.n_before} before, {s.n_after} after"
                      + (f"; excluded: {', '.join(s.excluded)}" if s.excluded else ""), highlight=False)
        for _, r in s.raters[s.raters["excluded"]].iterrows():
            console.print(f"  {r['rater']}: {r['reason']}", highlight=False)
        table = Table("condition", "kind", "raters", "mean [95 % t-CI]", "median", title="MUSHRA scores")
        for _, r in result.summary.iterrows():
            table.add_row(r["condition"], r["kind"], str(r["raters"]), fmt_ci(r["mean"], r["ci_low"], r["ci_high"]),
                          fmt(r["median"]))
        console.print(table)
        fr = result.friedman
        if fr.get("note"):
            console.print(f"Friedman: not computed ({fr['note']})", highlight=False)
        else:
            console.print(f"Friedman over {fr['conditions']} systems, {fr['blocks']} blocks: chi2 = "
                          f"{fmt(fr['statistic'])}, {p_text(fr['pvalue'])}, W = {fmt(fr['kendalls_w'])}",
                          highlight=False)
        if len(result.pairwise):
            table = Table("a", "b", "n", "mean a − b", "p", "p (Holm)", "r (rank-biserial)",
                          title="pairwise Wilcoxon signed-rank, Holm-corrected")
            for _, r in result.pairwise.iterrows():
                table.add_row(r["a"], r["b"], str(r["n"]), fmt(r["mean_difference"]), fmt_p(r["pvalue"]),
                              fmt_p(r["p_holm"]) + (" *" if r["significant"] else ""), fmt(r["rank_biserial"]))
            console.print(table)
        if result.mixed is not None and len(result.mixed["fixed"]):
            console.print(result.mixed["fixed"].to_string(index=False))
