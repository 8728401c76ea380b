"""``earshot listen``: thin commands over :mod:`earshot.listening_app.prepare` and :mod:`earshot.listening_app.store`.

Wired into the main CLI with ``app.add_typer(listen_app, name="listen")``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text
from pydantic import ValidationError

from earshot.listening_app.links import DEFAULT_ADDRESS
from earshot.results.terminal import console, err_console, print_table

listen_app = typer.Typer(no_args_is_help=True, help="Blind listening tests: MUSHRA (ITU-R BS.1534), ABX and more.")
DB_HELP = ("database: a SQLite file's path, or a URL (sqlite:///path or postgresql://...); default $EARSHOT_DB "
           "or a SQLite file in your data folder")


def _fail(message: str) -> None:
    err_console.print(Text.assemble(("error:", "bold red"), f" {message}"), highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _database(db: str | None) -> str | None:
    """``--db`` as a database URL (a plain path is a SQLite file); a malformed one fails in one line."""
    from earshot.listening_app.store import StoreError, database_url

    if db is None:
        return None
    try:
        return database_url(db)
    except StoreError as error:
        _fail(str(error))


def _user_errors():
    from earshot.listening_app.prepare import PrepareError
    from earshot.listening_app.store import StoreError

    return (PrepareError, StoreError)


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


@listen_app.command()
def prepare(run: Path = typer.Argument(..., help="a run directory (evaluated: reference/ and recon/)"),
            test_type: str = typer.Option("mushra", "--type",
                                          help="the kind of test: mushra (every condition rated against the "
                                               "reference), abx (every pair of conditions: is X A or B?), ab (every "
                                               "pair: which do you prefer?), ranking (every condition of an excerpt "
                                               "put in order, best first), mos (one recording per page, rated "
                                               "Excellent to Bad); the README says when to use which"),
            items: int = typer.Option(8, min=1, help="number of items (excerpts; ABX makes one trial per item and pair), "
                                                     "spread across categories"),
            conditions: Optional[str] = typer.Option(None, help="losses or other systems of the run (pca-<k>, a codec such as "
                                                                "opus@6k, a scored folder), comma-separated (default: "
                                                                "every loss; ABX compares every pair of them)"),
            seed: int = typer.Option(0, help="which seed's job to use for each loss"),
            seconds: float = typer.Option(8.0, help="stimulus length, seconds (at most 12)"),
            name: Optional[str] = typer.Option(None, help="test name (default: run id and a hash)"),
            self_registration: bool = typer.Option(
                False, "--self-registration/--invitation-only",
                help="let anyone who opens the server join under a typed name (default: invitation links only)"),
            must_play_all: bool = typer.Option(True, help="every stimulus must be played before submit"),
            require_100: bool = typer.Option(True, help="at least one stimulus must be rated 100"),
            resubmit: str = typer.Option("refuse", help="a second submit of a trial: refuse or overwrite"),
            completion_code: Optional[str] = typer.Option(
                None, help="one code shown to every rater on the last page, as a crowd platform issues it "
                           "(default: a random code per rater)"),
            items_per_rater: Optional[int] = typer.Option(
                None, min=1, help="each rater rates this many trials: a random subset, balanced so every trial is "
                                  "rated about equally often (default: every trial)"),
            attention: int = typer.Option(0, min=0, help="attention checks mixed into every rater's trials: the "
                                                         "reference against the low anchor, a known answer (MOS: "
                                                         "P.808 gold questions, the reference and the low anchor "
                                                         "alone, in turn)"),
            participant_param: str = typer.Option(
                "PROLIFIC_PID", help="the URL parameter that carries a crowd platform's participant id"),
            level_check: bool = typer.Option(
                False, "--level-check/--no-level-check",
                help="before the test, a page where the rater sets a comfortable level and confirms it"),
            training: bool = typer.Option(True, help="show the labelled training page first"),
            no_preference: bool = typer.Option(
                True, "--no-preference/--forced-choice",
                help="A/B preference: offer 'no preference' (default), or make the rater choose A or B"),
            training_item: Optional[str] = typer.Option(
                None, help="the run's item the training page plays, never a trial (default: one no trial uses)"),
            open_test: bool = typer.Option(False, "--open", help="open the test right away"),
            loudness: str = typer.Option("bs1770", help="level matching: bs1770 (ITU-R BS.1770-4 loudness) or rms"),
            db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database)) -> None:
    """Make a blind listening test of any type from a run: its items, stimuli and loudness matching."""
    from earshot.listening_app import testtypes
    from earshot.listening_app.audio import LOUDNESS_METHODS
    from earshot.listening_app.prepare import prepare_test
    from earshot.listening_app.settings import TestSettings
    from earshot.listening_app.store import set_status
    from earshot.results.present import Table

    if loudness not in LOUDNESS_METHODS:
        _fail(f"--loudness: {loudness!r} is not one of {', '.join(LOUDNESS_METHODS)}")
    try:
        settings = TestSettings(self_registration=self_registration, must_play_all=must_play_all,
                                require_100=require_100, resubmit=resubmit, completion_code=completion_code, training=training,
                                seconds=seconds, no_preference=no_preference, items_per_rater=items_per_rater,
                                attention=attention, participant_param=participant_param, level_check=level_check)
    except ValidationError as error:
        first = error.errors()[0]
        _fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
    try:
        made = prepare_test(run, db, items=items, conditions=_split(conditions), seed=seed, name=name,
                            settings=settings, loudness=loudness, training_item=training_item, test_type=test_type)
        if open_test:
            set_status(db, made.name, "open")
    except _user_errors() as error:
        _fail(str(error))
    kind = testtypes.get(made.type)
    console.print(Text.assemble(f"{kind.title} test ", (made.name, "bold"),
                                ": " + kind.describe(made.conditions, len(made.items), made.trials)))
    if made.type == "mushra":
        console.print(f"anchors: low-passed at {made.anchor_low_hz:.1f} Hz and {made.anchor_mid_hz:.1f} Hz")
    matching = "BS.1770-4 integrated loudness" if made.loudness == "bs1770" else "RMS"
    console.print(f"every stimulus matched to its reference's {matching} (--loudness {made.loudness})")
    if made.training_item:
        console.print(f"training page: {made.training_item}, an item no trial uses (--training-item to choose)")
    if made.note:
        console.print(made.note)
    if made.items_per_rater is not None or made.attention:
        console.print(crowd_design(made.trials, made.items_per_rater, made.attention))
    console.print("raters join by invitation link only (earshot listen invite)" if not self_registration else
                  "raters join by invitation link, or under a typed name on the start page (--self-registration)")
    conditions = sorted(next(iter(made.gains_db.values())))
    print_table(Table(["item", *conditions],
                      [[f"{item} (training)" if item == made.training_item else item,
                        *[f"{gains[c]:+.2f}" for c in conditions]] for item, gains in made.gains_db.items()],
                      "gain applied (dB)"))
    console.print("open it with: earshot listen open " + made.name if not open_test else "the test is open")


def crowd_design(trials: int, items_per_rater: int | None, attention: int) -> str:
    """What each rater is given, in words: ``3 of 8 trials (a balanced subset) + 2 attention checks``."""
    share = f"{trials} trials" if items_per_rater is None else f"{items_per_rater} of {trials} trials (a balanced subset)"
    return f"each rater: {share}" + (f" + {attention} attention check{'s' if attention != 1 else ''}" if attention else "")


@listen_app.command("open")
def open_(name: str, db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database)) -> None:
    """Open a test to raters (after the BS.1534 checks)."""
    from earshot.listening_app.store import set_status

    try:
        set_status(db, name, "open")
    except _user_errors() as error:
        _fail(str(error))
    console.print(f"{name} is open")


@listen_app.command()
def close(name: str, db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database)) -> None:
    """Close a test: no more submits are accepted."""
    from earshot.listening_app.store import set_status

    try:
        set_status(db, name, "closed")
    except _user_errors() as error:
        _fail(str(error))
    console.print(f"{name} is closed")


@listen_app.command("list")
def list_(db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database)) -> None:
    """Tests in the database, their type, status and how many ratings (ABX: answers) they have."""
    from earshot.listening_app import testtypes
    from earshot.listening_app.store import export_frame, list_tests
    from earshot.results.present import tests_table

    frame = export_frame(db)
    print_table(tests_table([{"name": t.name, "type": t.type, "title": testtypes.get(t.type).title,
                              "status": t.status, "run_id": t.run_id, "loudness": t.loudness,
                              "anchor_low_hz": t.anchor_low_hz, "anchor_mid_hz": t.anchor_mid_hz,
                              "ratings": int((frame["test"] == t.name).sum()), "per_rater": _per_rater(db, t)}
                             for t in list_tests(db)]))


def _per_rater(db: str | None, test) -> str:
    """A test's crowd design for ``listen list``: empty for a test where every rater rates every trial."""
    from earshot.listening_app.store import test_items

    if test.settings.items_per_rater is None and not test.settings.attention:
        return ""
    trials = sum(not i.training and not i.attention for i in test_items(db, test.id))
    return crowd_design(trials, test.settings.items_per_rater, test.settings.attention).removeprefix("each rater: ")


@listen_app.command()
def invite(name: str, count: int = typer.Option(1, min=1), base_url: str = typer.Option(DEFAULT_ADDRESS),
           db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database)) -> None:
    """Print invitation links (one new rater token each)."""
    from earshot.listening_app.links import invitation_link
    from earshot.listening_app.store import add_rater

    try:
        for _ in range(count):
            rater = add_rater(db, name)
            console.print(f"{rater.name}\t{invitation_link(base_url, rater.token)}", highlight=False, soft_wrap=True)
    except _user_errors() as error:
        _fail(str(error))


@listen_app.command()
def export(name: Optional[str] = typer.Argument(None, help="a test (default: all)"),
           out: Path = typer.Option(..., "--out", help="a .csv or .parquet file"),
           db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database)) -> None:
    """Write every submitted rating (with play counts and times) to CSV or parquet."""
    from earshot.listening_app.store import export_frame

    frame = export_frame(db, name)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        _fail(f"--out: {out.name}: use a .csv or .parquet file")
    console.print(f"{len(frame)} ratings written to {out}")


@listen_app.command()
def serve(db: Optional[str] = typer.Option(None, help=DB_HELP, callback=_database), port: int = typer.Option(8501),
          address: str = typer.Option("localhost", help="0.0.0.0 to serve other machines"),
          processes: int = typer.Option(1, min=1, help="app processes; above 1 they share bursts of raters "
                                                       "behind nginx (each browser kept on one) over PostgreSQL"),
          proxy_dir: Optional[Path] = typer.Option(None, help="with --processes above 1: keep nginx's config and "
                                                             "logs here (default: a temporary folder)")) -> None:
    """Run the rater and admin app (Streamlit)."""
    from earshot.listening_app.store import DB_ENV, StoreError, default_db_url, engine_for

    try:
        url = db or default_db_url()
    except StoreError as error:  # a malformed $EARSHOT_DB
        _fail(str(error))
    if processes > 1 and url.startswith("sqlite"):
        _fail(f"--processes {processes}: the database is SQLite, one file on one machine; serve several "
              "processes over PostgreSQL (--db postgresql://user@host/db)")
    if proxy_dir is not None and processes == 1:
        _fail("--proxy-dir: one process is served without a proxy; use it with --processes 2 or more")
    try:
        engine_for(url)  # a database that cannot be opened fails here, in one line, not inside the server
    except Exception as error:  # a SQLAlchemy or driver error: unreachable server, unwritable file
        _fail(f"database {url}: cannot open it ({type(error).__name__}: {str(error).splitlines()[0]})")
    env = dict(os.environ, **{DB_ENV: url})
    if processes > 1:
        from earshot.listening_app.proxy import ProxyError, serve_crowd

        try:
            raise typer.Exit(serve_crowd(lambda local_port: server_command(local_port, "127.0.0.1"), env,
                                         processes, address, port, proxy_dir))
        except ProxyError as error:
            _fail(str(error))
    command = server_command(port, address)
    # Become the server rather than its parent: a SIGTERM from systemd, a container runtime or
    # a supervisor then reaches Streamlit itself, which stops and frees the port and database.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


def server_command(port: int, address: str) -> list[str]:
    """``streamlit run`` on the app (through :mod:`earshot.listening_app.serve`, which keeps the server's
    paths from visitors), with the options a listening test needs."""
    app = Path(__file__).with_name("app.py")
    return [sys.executable, "-m", "earshot.listening_app.serve", "run", str(app), "--server.port", str(port),
            "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none",
            # An error on a page is logged on the server; the rater sees no traceback (and no paths).
            "--client.showErrorDetails", "none",
            # Streamlit's default full gc.collect() after every script run costs ~100 ms here
            # with numpy/scipy loaded, 10x a whole submit; Python's own GC still runs.
            "--runner.postScriptGC", "false"]
