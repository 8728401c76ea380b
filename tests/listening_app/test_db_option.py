"""``--db`` takes a SQLite file's path as well as a SQLAlchemy URL; a malformed one is one line."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.listening_app.store import DB_ENV, StoreError, database_url, dispose_engines, list_tests

runner = CliRunner()
MALFORMED = "postgresql://:::"


def test_a_path_is_a_sqlite_file_and_a_url_stays_a_url(tmp_path, monkeypatch):
    assert database_url(str(tmp_path / "ratings.sqlite")) == f"sqlite:///{tmp_path / 'ratings.sqlite'}"
    monkeypatch.chdir(tmp_path)
    assert database_url("ratings.sqlite") == f"sqlite:///{tmp_path / 'ratings.sqlite'}"
    assert database_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert database_url("postgresql://rater@db.example/earshot") == "postgresql://rater@db.example/earshot"
    for bad in (MALFORMED, "nosuchdb://host/x", str(tmp_path), ""):
        with pytest.raises(StoreError) as error:
            database_url(bad)
        assert "\n" not in str(error.value) and "sqlite:///path" in str(error.value)


def test_the_store_opens_a_plain_path(tmp_path):
    path = tmp_path / "plain.sqlite"
    try:
        assert list_tests(str(path)) == []
        assert path.is_file()
    finally:
        dispose_engines()


def test_listen_commands_take_a_path(tmp_path):
    path = tmp_path / "x.sqlite"
    try:
        result = runner.invoke(app, ["listen", "list", "--db", str(path)])
    finally:
        dispose_engines()
    assert result.exit_code == 0, result.output
    assert path.is_file()


@pytest.mark.parametrize("command", [["listen", "list"], ["listen", "export", "--out", "x.csv"], ["listen", "serve"],
                                     ["listen", "analyze"], ["listen", "open", "t"]])
def test_a_malformed_db_url_is_one_line(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("served a malformed database"))
    result = runner.invoke(app, [*command, "--db", MALFORMED])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "not a valid database URL" in result.output and MALFORMED in result.output
    assert not any(tmp_path.iterdir())


def test_report_refuses_a_malformed_db_in_one_line(tiny_run_copy):
    result = runner.invoke(app, ["report", str(tiny_run_copy), "--db", MALFORMED])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "not a valid database URL" in result.output


def test_serve_hands_the_app_the_url_of_a_plain_path(tmp_path, monkeypatch):
    served = {}
    monkeypatch.setattr(os, "execve", lambda path, args, env: served.update(env=env))
    try:
        result = runner.invoke(app, ["listen", "serve", "--db", str(tmp_path / "served.sqlite")])
    finally:
        dispose_engines()
    assert result.exit_code == 0, result.output
    assert served["env"][DB_ENV] == f"sqlite:///{tmp_path / 'served.sqlite'}"
