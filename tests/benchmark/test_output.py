"""Output for people and for scripts: into a pipe (a CI log, ``| grep``) no table cell is wrapped or cut,
a narrow terminal gets ``column: value`` blocks, and ``--json`` prints one JSON document whose rows are
the printed rows and whose raw numbers, formatted by the presentation layer's rules, are the printed cells."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.losses import REGISTRY
from earshot.results import present, terminal
from earshot.results.store import load_run
from tests.results.test_report import _simulated_ratings

runner = CliRunner()
ELLIPSIS = "…"  # what Rich puts where it cuts a cell


def _piped(args: list[str], tmp_path: Path) -> str:
    """What ``earshot ARGS`` prints to stdout through a pipe at COLUMNS=80 (checked to succeed)."""
    env = dict(os.environ, COLUMNS="80", OMP_NUM_THREADS="1",
               EARSHOT_DB=f"sqlite:///{tmp_path / 'absent' / 'listening.sqlite'}")
    done = subprocess.run([sys.executable, "-m", "earshot", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ELLIPSIS not in done.stdout
    return done.stdout


def _json(args: list[str]) -> dict:
    """The one JSON document ``earshot ARGS --json`` prints: stdout holds it and nothing else."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _tables(document: dict, key: str) -> list[dict]:
    found = [t for t in document["tables"] if t["key"] == key]
    assert found, f"no {key} table in {[t['key'] for t in document['tables']]}"
    return found


def _assert_printed(table: dict, printed: str) -> None:
    """The table's caption, header and every row are whole lines of the piped output, cell for cell."""
    lines = printed.splitlines()
    assert "\t".join(table["columns"]) in lines, table["caption"]
    for row in table["rows"]:
        assert "\t".join(row) in lines, (table["caption"], row)
    if table["caption"]:
        assert table["caption"] in lines


def _cells(table: dict):
    """(cell by column name, raw record) per row; a row for every record."""
    assert len(table["records"]) == len(table["rows"]) > 0, table["caption"]
    for row, record in zip(table["rows"], table["records"]):
        yield dict(zip(table["columns"], row)), record


def _check_metric_table(table: dict, metric_info: dict) -> None:
    for cells, record in _cells(table):
        assert cells["metric"] == record["metric"]
        assert record["losses"]
        for loss, value in record["losses"].items():
            assert cells[loss] == present.metric_interval(record["metric"], value["mean"], value["ci_low"],
                                                          value["ci_high"], metric_info), (record["metric"], loss)


def _check_hypotheses_table(table: dict, metric_info: dict) -> None:
    for cells, record in _cells(table):
        assert cells["mean [95 % CI]"] == present.metric_interval(record["metric"], record["mean"], record["ci_low"],
                                                                  record["ci_high"], metric_info)
        assert cells["pairs"] == present.count(record["pairs"])
        assert cells["p (Holm)"] == present.p_value(record["p_holm"])
        assert cells["verdict"] == record["verdict"]


def test_eval_piped_and_as_json_show_the_same_cells(tiny_run_copy, tmp_path):
    run = str(tiny_run_copy)
    printed = _piped(["eval", run, "--device", "cpu", "--workers", "1"], tmp_path)
    document = _json(["eval", run, "--device", "cpu", "--workers", "1"])
    assert document["command"] == "eval" and document["run"] == run
    metric_info = load_run(tiny_run_copy).metric_info
    for table in document["tables"]:
        _assert_printed(table, printed)
    for table in _tables(document, "metrics"):
        _check_metric_table(table, metric_info)
    for table in _tables(document, "hypotheses"):
        _check_hypotheses_table(table, metric_info)


def test_report_piped_and_as_json_show_the_same_cells(tiny_run_copy, tmp_path):
    run = str(tiny_run_copy)
    printed = _piped(["report", run, "--no-listening"], tmp_path)
    document = _json(["report", run, "--no-listening"])
    assert Path(document["report"]).is_file()
    metric_info = load_run(tiny_run_copy).metric_info
    for table in _tables(document, "hypotheses"):
        _assert_printed(table, printed)
        _check_hypotheses_table(table, metric_info)
    # Every table the report shows, by section; the metric tables with the numbers behind them.
    sections = {s["anchor"]: s for s in document["sections"]}
    metric_tables = [t for t in sections["metrics"]["tables"] if t["columns"][:3] == ["metric", "unit", "better"]]
    assert metric_tables
    for table in metric_tables:
        _check_metric_table(table, metric_info)
    assert [t["rows"] for t in sections["claims"]["tables"]] == [t["rows"] for t in _tables(document, "hypotheses")]


def test_compare_piped_and_as_json_show_the_same_cells(tiny_run, tmp_path):
    args = ["compare", str(tiny_run), str(tiny_run)]
    printed = _piped(args, tmp_path)
    document = _json(args)
    metric_info = load_run(tiny_run).metric_info
    (table,) = _tables(document, "compare")
    _assert_printed(table, printed)
    a, b = table["columns"][2:4]
    for cells, r in _cells(table):
        assert cells[a] == present.metric_interval(r["metric"], r["mean_a"], r["ci_low_a"], r["ci_high_a"], metric_info)
        assert cells[b] == present.metric_interval(r["metric"], r["mean_b"], r["ci_low_b"], r["ci_high_b"], metric_info)
        assert cells["B − A"] == present.interval(r["difference"], r["diff_ci_low"], r["diff_ci_high"],
                                                   present.metric_decimals(r["metric"], metric_info, r["mean_a"]))
        assert cells["loss"] in set(load_run(tiny_run).losses)


def test_listen_analyze_piped_and_as_json_show_the_same_cells(tiny_run, tmp_path):
    ratings = _simulated_ratings(tiny_run, tmp_path / "ratings.csv")
    args = ["listen", "analyze", "--ratings", str(ratings), "--mixed"]
    printed = _piped(args, tmp_path)
    document = _json(args)
    assert set(document["tests"]) == {"ratings.csv"}
    for table in document["tables"]:
        assert table["test"] == "ratings.csv"
        _assert_printed(table, printed)
    for text in document["text"]:  # sentences on one line each, whole
        assert text["text"] in printed
    for cells, r in (pair for table in _tables(document, "mushra") for pair in _cells(table)):
        assert cells["mean [95 % t-CI]"] == present.score_interval(r["mean"], r["ci_low"], r["ci_high"])
        assert cells["median"] == present.score(r["median"]) and cells["raters"] == present.count(r["raters"])
    for cells, r in _cells(_tables(document, "pairwise")[0]):
        assert cells["mean"] == present.score(r["mean_difference"])
        assert cells["W"] == present.statistic(r["statistic"]) and cells["p"] == present.p_value(r["pvalue"])
    for cells, r in _cells(_tables(document, "screening")[0]):
        assert cells["items rated"] == present.count(r["items"]) and cells["excluded"] == present.yes_no(r["excluded"])
    friedman = document["tests"]["ratings.csv"]["friedman"]
    assert f"χ² = {present.statistic(friedman['statistic'])}" in printed


def test_losses_piped_lists_every_name_whole(tmp_path):
    lines = _piped(["losses"], tmp_path).splitlines()
    for name, cls in REGISTRY.items():
        assert "\t".join([name, str(cls.head_channels), cls.description, REGISTRY.origin_of(name).describe()]) in lines


def test_a_json_refusal_leaves_stdout_empty(tmp_path):
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    assert result.exit_code != 0 and result.stdout == ""


TABLE = present.Table(["claim", "verdict"], [["the bark loss keeps more high-frequency energy than MSE",
                                              "inconclusive"], ["MSE's error is noisier", "contradicted"]],
                      "the claims", bold={(1, 1)})


def _terminal(monkeypatch, width: int) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(terminal, "console", Console(file=out, force_terminal=True, width=width, color_system=None))
    return out


def test_a_table_that_fits_the_terminal_is_drawn_with_rich(monkeypatch):
    out = _terminal(monkeypatch, 120)
    terminal.print_table(TABLE)
    assert "┃ claim" in out.getvalue() and "│ inconclusive │" in out.getvalue()


def test_a_narrow_terminal_gets_a_block_per_row_with_every_word_whole(monkeypatch):
    out = _terminal(monkeypatch, 40)
    terminal.print_table(TABLE)
    text = out.getvalue()
    assert "│" not in text and ELLIPSIS not in text
    words = text.split()
    for row in TABLE.rows:
        for cell in row:
            assert all(word in words for word in cell.split()), cell
    assert "verdict: inconclusive" in " ".join(words)


def test_json_document_collects_tables_and_text_and_sends_the_rest_to_stderr(capsys):
    with terminal.json_document(True, command="test") as document:
        terminal.console.print("a log line")
        terminal.print_table(TABLE, key="claims")
        terminal.print_text("a sentence", label="note")
        assert document["command"] == "test"
    captured = capsys.readouterr()
    assert "a log line" in captured.err and "a log line" not in captured.out
    parsed = json.loads(captured.out)
    assert parsed["tables"][0]["key"] == "claims" and parsed["tables"][0]["rows"] == TABLE.rows
    assert parsed["tables"][0]["bold"] == [[1, 1]]
    assert parsed["text"] == [{"text": "a sentence", "label": "note"}]
    terminal.console.print("after")
    assert "after" in capsys.readouterr().out


def test_json_document_writes_nothing_when_the_command_fails(capsys):
    with pytest.raises(RuntimeError):
        with terminal.json_document(True):
            terminal.print_table(TABLE)
            raise RuntimeError("refused")
    assert capsys.readouterr().out == ""
    assert not terminal.json_output()


def test_paths_specs_and_brackets_print_as_written(tmp_path):
    """Rich reads ``:X:`` as an emoji code and ``[/tmp/a]`` as a closing tag; a user's spec or path
    must reach the terminal unchanged, never as ❌ or a MarkupError traceback."""
    spec = f"{tmp_path}/[/odd]/nope.py:X"
    result = runner.invoke(app, ["losses", "check", spec])
    assert result.exit_code != 0
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "nope.py:X" in result.output and "[/odd]" in result.output and "❌" not in result.output
    with terminal.console.capture() as captured:
        terminal.console.print("losses: [mse, bark] from [/tmp/a] :X:", highlight=False)  # as run logs print
    assert captured.get().strip() == "losses: [mse, bark] from [/tmp/a] :X:"
