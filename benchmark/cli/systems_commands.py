"""``earshot score`` and ``earshot baselines``: systems beside the trained losses, in the same run contract.

Thin commands over :mod:`earshot.benchmark.evaluate.score` and
:mod:`earshot.benchmark.evaluate.systems`; their tables come from :mod:`earshot.results.present`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from earshot.benchmark.cli.render import console, fail, print_table

EXECUTOR_HELP = "Where the metrics run: local (a process pool) or ray (a Ray cluster's CPUs, one task per system × item)."
RAY_HELP = "Ray cluster address for --executor ray (default: a local Ray)."
CODECS_HELP = "Codec baselines, comma-separated CODEC@BITRATE: opus@6k,opus@12k,mp3@32k,codec2@3200."


def _errors():
    from earshot.benchmark.evaluate.codecs import CodecError
    from earshot.benchmark.evaluate.systems import AddSystemError

    return (CodecError, AddSystemError)


def _log(message: str) -> None:
    console.print(message, highlight=False)


def checked_codecs(text: str):
    """``--codecs`` parsed and the codec tools found, before any work; one line and exit 2 otherwise."""
    from earshot.benchmark.evaluate.codecs import check_installed, parse_specs

    try:
        specs = parse_specs(text)
        check_installed(specs)
    except _errors() as exc:
        fail(str(exc))
    return specs


def add_codec_baselines(run_dir: Path, specs, workers: Optional[int] = None, executor: str = "local",
                        ray_address: Optional[str] = None) -> None:
    """Add the codecs to an evaluated run and print what was made: bitrates, delays, command lines, versions."""
    from earshot.benchmark.evaluate.systems import add_codecs
    from earshot.results import present

    try:
        entries = add_codecs(run_dir, specs, workers=workers, log=_log, executor=executor, ray_address=ray_address)
    except _errors() as exc:
        fail(str(exc))
    print_table(present.codec_table(entries), key="codecs")


def register_codec_baselines(run_dir: Path, specs) -> None:
    """Record codecs in a run for its evaluation to encode, decode and measure beside its losses."""
    from earshot.benchmark.evaluate.systems import register_codecs

    try:
        register_codecs(run_dir, specs)
    except _errors() as exc:
        fail(str(exc))


def print_codec_baselines(run_dir: Path) -> None:
    """The table of the run's codec baselines (bitrates, delays, command lines, versions)."""
    from earshot.benchmark.evaluate.systems import KIND_CODEC
    from earshot.results import present
    from earshot.results.rundir import RunDir

    entries = {n: e for n, e in RunDir(run_dir).read_systems().items() if e.get("kind") == KIND_CODEC}
    if entries:
        print_table(present.codec_table(entries), key="codecs")


def score(
    reference: Optional[Path] = typer.Option(None, "--reference", help="A folder of reference audio (sub-folders or "
                                             "a manifest.json set categories, as for --data); with --into, the run's "
                                             "own references are used."),
    system: List[str] = typer.Option(..., "--system", help="NAME=DIR: a folder of decoded audio, files named as "
                                     "the references (any extension). Repeat for several systems."),
    out: Optional[Path] = typer.Option(None, "--out", help="The new run directory (runs/<id>)."),
    into: Optional[Path] = typer.Option(None, "--into", help="Add the systems to this evaluated run instead, next to "
                                        "its losses, on its excerpts (files named by item: speech-01.wav)."),
    rate: Optional[int] = typer.Option(None, "--rate", help="Sample rate to measure at (default: the references')."),
    max_delay: float = typer.Option(100.0, "--max-delay", help="Largest constant delay to find and remove, in ms."),
    partial: bool = typer.Option(False, "--partial", help="Score the files both folders have instead of stopping "
                                 "at a missing or extra one."),
    bitrate: Optional[List[str]] = typer.Option(None, "--bitrate", help="NAME=KBPS: a system's bitrate, for the "
                                                "report's bitrate axis (repeatable)."),
    workers: Optional[int] = typer.Option(None, help="Metric processes (default: the CPU count)."),
    executor: str = typer.Option("local", help=EXECUTOR_HELP),
    ray_address: Optional[str] = typer.Option(None, help=RAY_HELP),
) -> None:
    """Measure folders of already-decoded audio (any system's outputs) against references, as a run."""
    from earshot.benchmark.evaluate.score import parse_bitrate, parse_system, score_folders, score_into
    from earshot.results import present

    if executor not in ("local", "ray"):
        fail(f"--executor {executor!r}: use local or ray")
    try:
        systems = dict(parse_system(s) for s in system)
        if len(systems) < len(system):
            fail("--system: a name is given twice")
        bitrates = dict(parse_bitrate(b) for b in bitrate or [])
        unknown = sorted(set(bitrates) - set(systems))
        if unknown:
            fail(f"--bitrate {unknown[0]}: no --system of that name")
        if (out is None) == (into is None):
            fail("give --out DIR (a new run) or --into RUN (an evaluated run), one of them")
        if into is not None:
            if reference is not None:
                fail("--into takes the run's own references (RUN/reference/); leave out --reference")
            if rate is not None:
                fail("--into measures at the run's sample rate; leave out --rate")
            scored = score_into(into, systems, max_delay, partial, bitrates, workers, _log, executor, ray_address)
        else:
            if reference is None:
                fail("--reference DIR: the folder of references the systems decoded")
            scored = score_folders(reference, systems, out, rate, max_delay, partial, bitrates, workers, _log,
                                   executor, ray_address)
    except _errors() as exc:
        fail(str(exc))
    print_table(present.scored_table([vars(s) for s in scored]), key="scored")
    run_dir = into or out
    if into is not None:
        from earshot.benchmark.cli.app import print_evaluation
        from earshot.results.rundir import RunDir

        print_evaluation(run_dir, RunDir(run_dir).read_metrics())
    else:
        _print_metrics(run_dir)
    console.print(f"run directory: [bold]{run_dir}[/]")


def _print_metrics(run_dir: Path) -> None:
    from earshot.results import present
    from earshot.results.aggregate import ALL, metric_order, metric_summary
    from earshot.results.store import load_run

    run = load_run(run_dir)
    summary = metric_summary(run.metrics, per_category=False)
    print_table(present.metric_summary_table(summary, ALL, run.losses, metric_order(run.metrics, run.metric_info),
                                             run.metric_info, run.metrics), key="metrics")


def baselines(
    run_dir: Path = typer.Argument(..., help="An evaluated run directory (runs/<run-id>)."),
    codecs: str = typer.Option(..., "--codecs", help=CODECS_HELP),
    workers: Optional[int] = typer.Option(None, help="Metric processes (default: the CPU count)."),
    executor: str = typer.Option("local", help=EXECUTOR_HELP),
    ray_address: Optional[str] = typer.Option(None, help=RAY_HELP),
) -> None:
    """Encode and decode a run's excerpts with real codecs and add them as systems (bitrate measured)."""
    from earshot.results.rundir import RunDir

    if not RunDir(run_dir).exists():
        fail(f"{run_dir}: not a run directory")
    if executor not in ("local", "ray"):
        fail(f"--executor {executor!r}: use local or ray")
    specs = checked_codecs(codecs)
    add_codec_baselines(run_dir, specs, workers, executor, ray_address)
    from earshot.benchmark.evaluate.systems import SCORE_KIND

    if RunDir(run_dir).read_record().get("kind") == SCORE_KIND:
        _print_metrics(run_dir)
    else:
        from earshot.benchmark.cli.app import print_evaluation

        print_evaluation(run_dir, RunDir(run_dir).read_metrics())
