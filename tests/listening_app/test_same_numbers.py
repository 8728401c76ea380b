"""One run with a listening test, rendered by the report (HTML, Markdown), the CLI and the admin page:
the same numbers, formatted the same way, everywhere."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app, print_evaluation
from earshot.listening_app import store
from earshot.listening_app.summary import system_order
from earshot.results import present
from earshot.results.adequacy import assess
from earshot.results.aggregate import ALL, metric_order, metric_summary
from earshot.results.claims import check_run
from earshot.results.hypotheses import declared_for_run

from earshot.results.listening import analyze_ratings
from earshot.results.store import load_run
from tests.listening_app.conftest import make_test
from tests.listening_app.test_app import app as admin_app

TEST = "same"


def _rate(db: str, test: store.TestInfo) -> None:
    """Five raters who rate bark above mse, each a little differently; r4 misses the hidden reference
    (post-screening excludes them), so every table has something to show."""
    for r in range(5):
        rater = store.add_rater(db, test.name, f"r{r}")
        store.record_consent(db, rater.id)
        for position, item in enumerate(i for i in store.test_items(db, test.id) if not i.training):
            scores = {"reference": 60.0 if r == 4 else 100.0, "anchor-low": 10.0 + r, "anchor-mid": 40.0 + 2 * r,
                      "mse-seed0": 35.0 + 4 * r + 3 * position, "bark-seed0": 55.0 + 3 * r - 2 * position}
            ratings = [store.Rating(s.id, scores[s.condition], 1, 2.0) for s in store.item_stimuli(db, item.id)]
            store.submit_trial(db, rater.token, item.id, ratings, 1.0)


@pytest.fixture
def rated_run(run_dir, sqlite_url, tmp_path, monkeypatch) -> tuple[Path, str]:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoint.pt", "report"))
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    _rate(sqlite_url, make_test(sqlite_url, run, TEST, training=False))
    return run, sqlite_url


def _has_row(lines: list[str], cells: list[str]) -> bool:
    """Some line holds every cell, in order."""
    for line in lines:
        at = 0
        for cell in cells:
            found = line.find(cell, at)
            if found < 0:
                break
            at = found + len(cell)
        else:
            return True
    return False


def test_report_cli_and_admin_page_print_the_same_tables(rated_run, capsys):
    run, db = rated_run
    runner = CliRunner()
    for format in ("html", "md"):
        result = runner.invoke(app, ["report", str(run), "--db", db, "--format", format])
        assert result.exit_code == 0, result.output
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    html_rows = [html.unescape(re.sub(r"</?strong>", "", row)) for row in page.split("<tr>")]
    md_rows = [line.replace("**", "") for line in (run / "report" / "index.md").read_text().splitlines()]
    analyzed = runner.invoke(app, ["listen", "analyze", TEST, "--db", db])
    assert analyzed.exit_code == 0, analyzed.output
    cli_rows = analyzed.output.splitlines()

    # What every renderer must show, from the presentation layer.
    result = analyze_ratings(store.export_frame(db, TEST), TEST, system_order=system_order(run))
    assert result.screening.excluded == ["r4"]
    listening = [present.screening_table(result.screening), *present.mushra_tables(result.summary),
                 present.pairwise_table(result.pairwise)]
    for table in listening:
        for row in table.rows:
            assert _has_row(html_rows, row), (table.caption, row)
            assert _has_row(md_rows, row), (table.caption, row)
            assert _has_row(cli_rows, row), (table.caption, row)
    # The export is the ratings table: analysed from its CSV it gives the same means.
    exported = run / "ratings.csv"
    assert runner.invoke(app, ["listen", "export", TEST, "--db", db, "--out", str(exported)]).exit_code == 0
    from_file = runner.invoke(app, ["listen", "analyze", "--ratings", str(exported)])
    assert from_file.exit_code == 0, from_file.output
    for table in present.mushra_tables(result.summary):
        for row in table.rows:
            assert _has_row(from_file.output.splitlines(), row), (table.caption, row)
    sentence = present.screening_sentence(result.screening)
    assert "5 before, 4 after; excluded: r4." in sentence
    assert sentence in html.unescape(page) and sentence in analyzed.output

    # eval's tables (the report's pooled metric table and the declared hypotheses) are the report's rows.

    loaded = load_run(run)
    print_evaluation(run, loaded.metrics)
    eval_rows = capsys.readouterr().out.splitlines()
    losses = [name for name in loaded.losses if name in set(loaded.metrics["loss"])]
    pooled = present.metric_summary_table(metric_summary(loaded.metrics, per_category=False), ALL, losses,
                                          metric_order(loaded.metrics, loaded.metric_info), loaded.metric_info,
                                          loaded.metrics)
    declaration = declared_for_run(run)
    assessment = assess(loaded)
    claims = present.hypotheses_table(check_run(loaded, declaration.hypotheses, assessment), declaration,
                                      loaded.metric_info)

    for table in (pooled, claims, present.adequacy_table(assessment, loaded.metric_info)):
        assert table.rows
        for row in table.rows:
            assert _has_row(eval_rows, row), (table.caption, row)
            assert _has_row(html_rows, row), (table.caption, row)
            assert _has_row(md_rows, row), (table.caption, row)

    # The admin page shows the same strings in its tables.
    at = admin_app(page="views/admin.py")
    at.text_input(key="admin_password").input("pw").run()
    at.button(key="admin_login").click().run()
    at.selectbox(key="admin_test").select(TEST).run()
    assert not at.exception
    shown = [df.value for df in at.dataframe]
    for table in (*present.mushra_tables(result.summary), present.screening_table(result.screening)):
        expected = table.frame()
        assert any(list(frame.columns) == list(expected.columns) and frame.astype(str).values.tolist()
                   == expected.values.tolist() for frame in shown), table.caption


def _rate_many(db: str, test: store.TestInfo, raters: int) -> None:
    """``raters`` raters, bark above mse on average but each rater differently; every one passes screening."""
    rng = np.random.default_rng(raters)
    for r in range(raters):
        rater = store.add_rater(db, test.name, f"p{r:02d}")
        store.record_consent(db, rater.id)
        for item in (i for i in store.test_items(db, test.id) if not i.training):
            levels = {"reference": 100.0, "anchor-low": 8.0, "anchor-mid": 30.0, "mse-seed0": 40.0, "bark-seed0": 55.0}
            ratings = [store.Rating(s.id, 100.0 if s.condition == "reference" else
                                    float(np.clip(round(levels[s.condition] + rng.normal(0, 30)), 0, 100)), 1, 2.0)
                       for s in store.item_stimuli(db, item.id)]
            store.submit_trial(db, rater.token, item.id, ratings, 1.0)


@pytest.mark.parametrize("raters", [2, 20])
def test_two_and_twenty_raters_read_the_same_in_the_cli_the_report_and_the_admin_page(raters, run_dir, sqlite_url,
                                                                                       tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoint.pt", "report"))
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    _rate_many(sqlite_url, make_test(sqlite_url, run, TEST, training=False), raters)
    runner = CliRunner()
    exported = tmp_path / "ratings.csv"
    assert runner.invoke(app, ["listen", "export", TEST, "--db", sqlite_url, "--out", str(exported)]).exit_code == 0
    outputs = {"cli (database)": ["listen", "analyze", TEST, "--db", sqlite_url, "--mixed"],
               "cli (ratings file)": ["listen", "analyze", "--ratings", str(exported), "--mixed"]}
    printed = {}
    for where, args in outputs.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        printed[where] = result.output
    assert runner.invoke(app, ["report", str(run), "--db", sqlite_url, "--format", "md"]).exit_code == 0
    markdown = (run / "report" / "index.md").read_text()
    printed["report"] = markdown[markdown.index("## Listening test"):].replace("**", "")

    result = analyze_ratings(store.export_frame(sqlite_url, TEST), TEST, system_order=system_order(run))
    pairwise, mixed = present.pairwise_table(result.pairwise), present.mixed_model_table(result.mixed["fixed"])
    tables = [*present.mushra_tables(result.summary), pairwise, mixed]
    few = present.too_few_raters_sentence(result.summary)
    assert (few is not None) == (raters < 3)
    for where, text in printed.items():
        lines = text.splitlines()
        for table in tables:  # a ratings file lists systems alphabetically, a run in job order: same rows
            for row in table.rows:
                assert _has_row(lines, row), (where, table.caption, row)
        assert not re.search(r"\d[eE][+-]?\d", text), where
        if few:
            assert few in " ".join(lines), where
    # Every difference reads higher-rated − lower-rated, in the pairwise tests and the mixed model alike.
    means = result.summary.set_index("condition")["mean"]
    higher, lower = sorted(["bark-seed0", "mse-seed0"], key=lambda c: -means[c])
    assert [row[0] for row in pairwise.rows] == [row[0] for row in mixed.rows] == [f"{higher} − {lower}"]
    assert float(pairwise.rows[0][2]) > 0 and float(mixed.rows[0][1].split()[0]) > 0

    at = admin_app(page="views/admin.py")
    at.text_input(key="admin_password").input("pw").run()
    at.button(key="admin_login").click().run()
    at.selectbox(key="admin_test").select(TEST).run()
    shown = [df.value.astype(str).values.tolist() for df in at.dataframe]
    for table in present.mushra_tables(result.summary):
        assert table.frame().values.tolist() in shown, table.caption
    assert (few in [c.value for c in at.caption]) if few else True
