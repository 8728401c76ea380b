"""The ``earshot`` command line: thin commands over library functions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from earshot.benchmark.cli.render import console, json_document, print_table, print_text
from earshot.benchmark.cli.render import fail as _fail

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="earshot: what does my loss function do to the sound?")
data_app = typer.Typer(no_args_is_help=True, help="The audio data: the built-in corpus or your own folder.")
app.add_typer(data_app, name="data")


def _user_errors():
    from earshot.benchmark.data.audio import DataError
    from earshot.benchmark.config import ConfigError
    from earshot.benchmark.data.corpus import CorpusError
    from earshot.benchmark.plugins import PluginChangedError
    from earshot.benchmark.train.runner import RunError
    from earshot.losses import UnknownLossError
    from earshot.models import UnknownModelError
    from earshot.results.hypotheses import HypothesisError

    return (ConfigError, DataError, CorpusError, RunError, UnknownLossError, UnknownModelError, HypothesisError,
            PluginChangedError)


HYPOTHESES_HELP = ("A YAML file of declared hypotheses (name, metric, treatment, baseline, direction, categories, "
                   "smallest_effect); default: those recorded in the run, else the seed's three claims.")


def checked_hypotheses(path: Path | None, losses: list[str]) -> tuple[str, str]:
    """(source, text) of the hypotheses file ``path`` (None: the seed's default set), checked against the
    metric catalog and, for a user's file, ``losses``. Raises HypothesisError (one line)."""
    from earshot.benchmark.evaluate.metrics import metric_catalog
    from earshot.results.hypotheses import SEED_HYPOTHESES_FILE, read, validate

    hypotheses, text = read(path or SEED_HYPOTHESES_FILE)
    source = str(path) if path else SEED_HYPOTHESES_FILE.name
    validate(hypotheses, source, metric_catalog(), losses if path else None)
    return source, text


def _config(preset: str, sets: list[str] | None, **flags):
    from earshot.benchmark.config import load_config, parse_override

    overrides = {}
    for key, value in flags.items():
        if value is not None:
            overrides[key] = value
    for text in sets or []:
        key, value = parse_override(text)
        overrides[key] = value
    return load_config(preset, overrides)


class _JobProgress:
    """A Rich progress bar per job: loss, windows/s, ETA."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = Progress(TextColumn("{task.fields[job]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TextColumn("loss {task.fields[loss]:.4g}"), TextColumn("{task.fields[rate]:.0f} win/s"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self.tasks: dict[str, int] = {}

    def __call__(self, info: dict) -> None:
        if self.quiet:
            return
        job = info["job"]
        total, done = info["total"], info["step"]
        if job not in self.tasks:
            self.tasks[job] = self.bar.add_task(job, total=total, job=job, loss=float("nan"), rate=0.0)
        self.bar.update(self.tasks[job], completed=done, loss=info["loss"], rate=info["windows_per_s"])

    def __enter__(self):
        if not self.quiet:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if not self.quiet:
            self.bar.stop()


@app.command()
def run(
    preset: str = typer.Option("quick", help="tiny (tests), quick (2-core CPU) or seed (the faithful reproduction, GPU)."),
    losses: Optional[str] = typer.Option(None, help="Comma-separated losses: names or weighted sums, e.g. mse,mse+0.1*bark; "
                                                    "a plugin by name, module.path:Class or ./file.py:Class."),
    grid: Optional[str] = typer.Option(None, help="all-losses (every loss earshot ships), all-losses+plugins (and every "
                                                  "installed plugin loss) or a named list of losses from the preset."),
    model: Optional[str] = typer.Option(None, "--model", help="gated-conv (default), an installed plugin's name, "
                                                              "module.path:Class or ./file.py:Class."),
    seeds: Optional[int] = typer.Option(None, help="Seeds per loss."),
    data: Optional[Path] = typer.Option(None, help="A folder of audio (default: the built-in corpus)."),
    budget: Optional[str] = typer.Option(None, help="Per job: steps (5000), epochs (200e) or minutes (3m: every job "
                                                    "trains the steps the slowest loss trains in 3 minutes)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    executor: str = typer.Option("local", help="local or ray."),
    pack: str = typer.Option("auto", "--pack", help="Jobs trained side by side in one process: auto (every job "
                                                    "that can, on CUDA; none on the CPU), off, or a number; "
                                                    "with --executor ray, one Ray task per pack."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address (default: a local Ray)."),
    out: Path = typer.Option(Path("runs"), help="Where run directories go."),
    run_id: Optional[str] = typer.Option(None, help="Run directory name (default: preset-confighash)."),
    resume: bool = typer.Option(False, help="Continue an existing run with its recorded config."),
    strict: bool = typer.Option(False, "--strict", help="Refuse to continue a run whose plugin file or package "
                                                        "changed since it was recorded (default: use the run's copy)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config field: train.lr=1e-4."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (for CI)."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate the trained jobs afterwards."),
    hypotheses: Optional[Path] = typer.Option(None, "--hypotheses", help="A YAML file of declared hypotheses, "
                                              "checked before training and recorded in the run (default: the "
                                              "seed's three claims)."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Codec baselines added after evaluation, "
                                            "CODEC@BITRATE comma-separated: opus@6k,mp3@32k,codec2@3200."),
) -> None:
    """Train the grid losses × seeds into one run directory, then evaluate it."""
    from earshot.benchmark.config import select_grid
    from earshot.benchmark.evaluate.baseline import baseline_name
    from earshot.benchmark.train.runner import run_grid
    from earshot.models import code_size

    from earshot.benchmark.cli.systems_commands import checked_codecs, print_codec_baselines, register_codec_baselines

    codecs = checked_codecs(baselines) if baselines else None  # a missing codec stops the run before training
    if codecs and not evaluate:
        _fail("--baselines needs the evaluation (leave out --no-eval, or add them later with earshot baselines)")
    try:
        if grid and losses:
            _fail("--grid and --losses: give one of them")
        config = _config(preset, set_, losses=[s.strip() for s in losses.split(",")] if losses else None,
                         seeds=seeds, **{"data.path": str(data) if data else None, "train.budget": budget,
                                         "model.name": model})
        if grid:
            config = select_grid(config, grid)
        # every evaluation measures the linear baseline (and the codecs asked for) too, so a hypothesis may name them
        declared = checked_hypotheses(hypotheses, [*config.losses, baseline_name(code_size(
            config.model, config.data.window, config.model_options, config.data.sample_rate)),
            *(spec.name for spec in codecs or [])])
        with _JobProgress(quiet or bool(os.environ.get("CI"))) as progress:
            run_dir = run_grid(config, out=out, run_id=run_id, device=device, executor=executor,
                               ray_address=ray_address, resume=resume, log=lambda m: console.print(m, highlight=False),
                               progress=progress, check_metrics=evaluate, hypotheses=declared, strict=strict,
                               pack=pack)
    except _user_errors() as exc:
        _fail(str(exc))
    if evaluate and codecs:
        register_codec_baselines(run_dir, codecs)  # evaluation encodes them with the losses' excerpts
    if evaluate:  # on Ray too when training ran there
        _evaluate(run_dir, device, None, None, strict=strict, executor=executor, ray_address=ray_address)
    if evaluate and codecs:
        print_codec_baselines(run_dir)
    console.print(Text.assemble("run directory: ", (str(run_dir), "bold")))


def _evaluate(run_dir: Path, device: str, data: Optional[Path], workers: Optional[int], force: bool = False,
              hypotheses: Optional[Path] = None, strict: bool = False, executor: str = "local",
              ray_address: Optional[str] = None) -> None:
    from earshot.benchmark.evaluate.reconstruct import evaluate_run

    try:
        metrics = evaluate_run(run_dir, device=device, data=data, workers=workers, force=force,
                               log=lambda m: console.print(m, highlight=False), strict=strict, executor=executor,
                               ray_address=ray_address)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    print_evaluation(run_dir, metrics, hypotheses)


def print_evaluation(run_dir: Path, metrics, hypotheses: Optional[Path] = None) -> None:
    """What ``earshot eval`` prints about a run's metrics: the report's pooled table of means with
    their intervals, the metrics skipped or failed, and the declared hypotheses checked (``hypotheses``,
    a file given after the fact, else those recorded in the run, else the seed's)."""
    from earshot.benchmark.evaluate.metrics import metric_catalog
    from earshot.results import present
    from earshot.results.adequacy import assess
    from earshot.results.aggregate import ALL, metric_order, metric_summary
    from earshot.results.claims import check_run
    from earshot.results.hypotheses import HypothesisError, declared_for_run
    from earshot.results.store import load_run
    from earshot.results.training import unequal_training

    metric_info = metric_catalog()
    run = load_run(run_dir)  # once: it reads the metrics and every job's training log
    losses = [name for name in run.losses if name in set(metrics["loss"])]
    summary = metric_summary(metrics, per_category=False)
    print_table(present.metric_summary_table(summary, ALL, losses, metric_order(metrics, metric_info), metric_info,
                                             metrics), key="metrics")
    failures = metrics[metrics["error"].notna()]
    skipped = failures[failures["error"].str.startswith("skipped")]
    for metric, reasons in skipped.groupby("metric")["error"]:
        print_text(f"metric {metric} skipped: {reasons.iloc[0].removeprefix('skipped: ')}")
    failed = failures.drop(skipped.index)
    if len(failed):
        print_text(f"{len(failed)} metric values could not be computed (NaN, reason in metrics.parquet's error "
                   f"column; most common: {failed['error'].value_counts().index[0]})")
    try:
        declaration = declared_for_run(run_dir, hypotheses)
    except HypothesisError as exc:
        _fail(str(exc))
    if declaration.when == "after the fact":
        print_text(f"hypotheses from {hypotheses} are declared after the fact (not recorded in the run before "
                   f"training): read their verdicts as exploration")
    adequacy = assess(run)
    if len(adequacy):
        print_table(present.adequacy_table(adequacy, metric_info), key="adequacy")
        undertrained = present.undertrained_sentence(adequacy)
        if undertrained:
            print_text(undertrained, label="undertrained")
    checked = check_run(run, declaration.hypotheses, adequacy, metric_info)
    print_table(present.hypotheses_table(checked, declaration, metric_info), key="hypotheses")
    unequal = present.training_note(unequal_training(run.jobs, losses))
    if unequal:
        print_text(unequal, label="note")


@app.command("eval")
def eval_run(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/<run-id>)."),
    data: Optional[Path] = typer.Option(None, help="Evaluate on this folder of audio instead of the held-out files."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    workers: Optional[int] = typer.Option(None, help="Metric processes (default: the CPU count)."),
    force: bool = typer.Option(False, "--force", help="Redo every reconstruction and metric, cached or not."),
    hypotheses: Optional[Path] = typer.Option(None, "--hypotheses", help=HYPOTHESES_HELP),
    strict: bool = typer.Option(False, "--strict", help="Refuse a run whose plugin file or package changed since "
                                                        "it was recorded (default: use the run's copy)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (the tables as shown, with the "
                                                       "numbers behind them) instead; logs go to stderr."),
    executor: str = typer.Option("local", help="Where the metrics run: local (a process pool) or ray (a Ray "
                                               "cluster's CPUs, one task per system × item)."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address for --executor ray (default: a local Ray)."),
) -> None:

    """Reconstruct and measure what is new or changed in a run (a job, a checkpoint, a metric's version);
    prints the claims check."""
    from earshot.results.rundir import RunDir

    if not RunDir(run_dir).config_file.is_file():
        _fail(f"{run_dir}: not a run directory (no {RunDir(run_dir).config_file.name})")
    if hypotheses is not None:
        from earshot.results.hypotheses import HypothesisError
        from earshot.results.store import load_run

        try:  # refused before any evaluation work
            checked_hypotheses(hypotheses, load_run(run_dir).losses)
        except HypothesisError as exc:
            _fail(str(exc))
    if executor not in ("local", "ray"):
        _fail(f"--executor {executor!r}: use local or ray")
    with json_document(as_json, command="eval", run=str(run_dir)):
        _evaluate(run_dir, device, data, workers, force, hypotheses, strict, executor, ray_address)


losses_app = typer.Typer(invoke_without_command=True, help="Every loss (earshot's and installed plugins'); "
                                                         "`check SPEC` tries one before a run.")
models_app = typer.Typer(invoke_without_command=True, help="Every model (earshot's and installed plugins'); "
                                                         "`check SPEC` tries one before a run.")
app.add_typer(losses_app, name="losses")
app.add_typer(models_app, name="models")


@losses_app.callback()
def list_losses(ctx: typer.Context) -> None:
    """List every loss: earshot's own and installed plugins', with where each comes from."""
    if ctx.invoked_subcommand is not None:
        return
    from earshot.losses import describe_losses
    from earshot.results.present import registry_table

    rows = [(name, "–" if head is None else str(head), description, origin)
            for name, description, head, origin in describe_losses()]
    print_table(registry_table(rows, "loss"))


@models_app.callback()
def list_models(ctx: typer.Context) -> None:
    """List every model: earshot's own and installed plugins', with where each comes from."""
    if ctx.invoked_subcommand is not None:
        return
    from earshot.models import MODELS
    from earshot.results.present import registry_table

    rows = []
    for name in MODELS.known():
        kind = "built-in" if MODELS.is_builtin(name) else "plugin"
        try:
            cls = MODELS.resolve(name)
        except _user_errors() as exc:  # listed with why, so one broken install hides nothing else
            rows.append((name, kind, f"cannot be used: {exc}", "an installed plugin"))
            continue
        description = getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0]
        rows.append((name, kind, description, MODELS.origin_of(name).describe()))
    print_table(registry_table(rows, "model"))


CHECK_PRESET_HELP = "Preset whose shapes (window, sample rate, batch) the check uses."


def _check(spec: str, role: str, preset: str, sets: list[str] | None, device: str) -> None:
    from earshot.benchmark.plugins import check_report
    from earshot.results.present import plugin_check_table

    try:
        result = check_report(_config(preset, sets), spec, role, device=device)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    print_table(plugin_check_table(result), key="check")


@losses_app.command("check")
def check_loss_command(
    spec: str = typer.Argument(..., help="A loss: a name, module.path:Class, ./file.py:Class or a weighted sum."),
    preset: str = typer.Option("quick", help=CHECK_PRESET_HELP),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config field: "
                                                                 "loss_options.<name>.<key>=value."),
    device: str = typer.Option("cpu", help="auto, cpu or cuda."),
) -> None:
    """Check a loss before a long run: it loads, runs on a random batch, and what it says about a few probes."""
    _check(spec, "loss", preset, set_, device)


@models_app.command("check")
def check_model_command(
    spec: str = typer.Argument(..., help="A model: a name, module.path:Class or ./file.py:Class."),
    preset: str = typer.Option("quick", help=CHECK_PRESET_HELP),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config field: "
                                                                 "model_options.<key>=value."),
    device: str = typer.Option("cpu", help="auto, cpu or cuda."),
) -> None:
    """Check a model before a long run: it builds, maps a random batch to the head's shape, its size and speed."""
    _check(spec, "model", preset, set_, device)


@app.command("config")
def show_config(
    preset: str = typer.Option("quick", help="Preset to resolve."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config field: train.lr=1e-4."),
) -> None:
    """Print the resolved config of a preset with overrides."""
    from earshot.benchmark.config import ConfigError, dump_config

    try:
        console.print(dump_config(_config(preset, set_)), highlight=False, end="")
    except ConfigError as exc:
        _fail(str(exc))


@data_app.command("build")
def data_build(
    minutes: float = typer.Option(10.0, help="Total minutes of audio."),
    sample_rate: int = typer.Option(11025, help="Sample rate of the corpus."),
    force: bool = typer.Option(False, help="Rebuild even when cached."),
) -> None:
    """Build the built-in corpus from Debian packages (cached under ~/.cache/earshot)."""
    from earshot.benchmark.data.corpus import CorpusError, ensure_corpus

    try:
        path = ensure_corpus(minutes=minutes, sample_rate=sample_rate, force=force)
    except CorpusError as exc:
        _fail(str(exc))
    console.print(Text.assemble("corpus: ", (str(path), "bold")))
    _print_data_info(path, sample_rate)


@data_app.command("info")
def data_info(
    data: Optional[Path] = typer.Option(None, help="A folder of audio (default: the built-in corpus)."),
    preset: str = typer.Option("quick", help="Preset whose data settings (rate, window, split) apply."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config field."),
) -> None:
    """Files, total duration and the train/test split per category."""
    try:
        config = _config(preset, set_, **{"data.path": str(data) if data else None})
        _print_data_info(None, config.data.sample_rate, config)
    except _user_errors() as exc:
        _fail(str(exc))


def _print_data_info(path, sample_rate, config=None) -> None:
    from earshot.benchmark.config import load_config
    from earshot.benchmark.data.windows import load_data, split_by_file

    if config is None:
        config = load_config("quick", {"data.path": str(path), "data.sample_rate": sample_rate})
    audio_set = load_data(config.data, log=lambda m: console.print(m, highlight=False))
    split = split_by_file(audio_set, config.data.test_fraction, config.data.split_seed)
    from earshot.results.present import data_table

    rate = audio_set.sample_rate
    categories = []
    for category in [*sorted({f.category for f in audio_set.files}), "all"]:
        members = [f for f in audio_set.files if category in ("all", f.category)]
        test = [f for f in split.test if category in ("all", f.category)]
        categories.append({"category": category, "files": len(members),
                           "minutes": sum(f.audio.size for f in members) / rate / 60,
                           "train_files": len(members) - len(test), "test_files": len(test),
                           "test_minutes": sum(f.audio.size for f in test) / rate / 60})
    print_table(data_table(categories, audio_set.root, rate))
    if audio_set.skipped:
        console.print(f"skipped files: {len(audio_set.skipped)}")


@app.command()
def bench(
    preset: str = typer.Option("seed", help="Model preset to measure."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    batch: Optional[int] = typer.Option(None, help="Batch size (default: the preset's)."),
    losses: Optional[str] = typer.Option(
        None, help="Comma-separated losses: names or weighted sums, e.g. mse,mse+0.1*bark (default: every name)."),
    steps: int = typer.Option(5, help="Timed steps per loss (after warm-up)."),
    output: Optional[Path] = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override any config field."),
    metrics: bool = typer.Option(False, "--metrics", help="Measure the metrics (single process vs pool) instead."),
    workers: Optional[int] = typer.Option(None, help="--metrics: pool size (default: the CPU count)."),
    profile: bool = typer.Option(False, "--profile", help="Print each loss's top operators (torch.profiler) instead."),
    model: Optional[str] = typer.Option(None, "--model", help="gated-conv (default), a plugin's name, "
                                                              "module.path:Class or ./file.py:Class."),
    pack: bool = typer.Option(False, "--pack", help="Time the grid (--losses × --seeds) packed against one job "
                                                    "at a time instead."),
    seeds: Optional[int] = typer.Option(None, help="--pack: seeds per loss (default: the preset's)."),
) -> None:
    """Measure training-step speed per loss (windows/s, bark/mse ratio, memory, TFLOP/s), or --metrics, or --pack."""
    from earshot.benchmark.bench import bench_metrics, bench_training
    from earshot.results import present

    if pack:
        from earshot.benchmark.bench import bench_pack

        try:
            config = _config(preset, set_, **{"train.batch": batch, "model.name": model})
            result = bench_pack(config, device=device, losses=[s.strip() for s in losses.split(",")] if losses else None,
                                seeds=seeds, steps=steps, log=lambda m: console.print(m, highlight=False))
        except (*_user_errors(), ValueError) as exc:
            _fail(str(exc))
        print_table(present.pack_bench_table(result))
        text = json.dumps(result, indent=2)
        if output:
            output.write_text(text)
        console.print_json(text) if output is None else console.print(f"wrote {output}")
        return

    if metrics:
        result = bench_metrics(workers=workers, log=lambda m: console.print(m, highlight=False))
        console.print(f"every metric, one process: {result['all_metrics_single_audio_s_per_s']:.1f} s of audio/s; "
                      f"pool of {result['workers']}: {result['all_metrics_pool_audio_s_per_s']:.1f} s/s "
                      f"({result['pool_speedup']:.2f}×)")
        if output:
            output.write_text(json.dumps(result, indent=2))
        return

    if profile:
        from earshot.benchmark.bench import profile_losses

        try:
            config = _config(preset, set_, **{"train.batch": batch, "model.name": model})
            found = profile_losses(config, device=device,
                                   losses=[s.strip() for s in losses.split(",")] if losses else None)
        except (*_user_errors(), ValueError) as exc:
            _fail(str(exc))
        for name, row in found["losses"].items():
            print_table(present.profile_table(name, row, found))
        if output:
            output.write_text(json.dumps(found, indent=2))
        return
    try:
        config = _config(preset, set_, **{"train.batch": batch, "model.name": model})
        names = [s.strip() for s in losses.split(",")] if losses else None
        result = bench_training(config, device=device, losses=names, steps=steps,
                                log=lambda m: console.print(m, highlight=False))
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    print_table(present.bench_table(result))
    if "bark_to_mse" in result:
        console.print(f"bark_to_mse: {result['bark_to_mse']:.3f}")
    text = json.dumps(result, indent=2)
    if output:
        output.write_text(text)
    console.print_json(text) if output is None else console.print(f"wrote {output}")


def _metric_info_first(command, *run_params: str):
    """``command``, first writing ``metrics_info.json`` from the metric registry into each run
    (named by ``run_params``) evaluated before evaluation wrote it, so old runs report as new ones."""
    import functools

    @functools.wraps(command)
    def with_metric_info(**params):
        from earshot.benchmark.evaluate.metrics import metric_catalog
        from earshot.results.rundir import RunDir

        for name in run_params:
            RunDir(params[name]).ensure_metric_info(metric_catalog)
        return command(**params)

    return with_metric_info


def _add_commands() -> None:
    """The listening test and the reports live in their own packages; their commands join here."""
    from earshot.benchmark.cli.results_commands import analyze, compare, report
    from earshot.benchmark.cli.systems_commands import baselines, score
    from earshot.listening_app.cli import listen_app

    listen_app.command("analyze")(analyze)
    app.add_typer(listen_app, name="listen")
    app.command("report")(_metric_info_first(report, "run_dir"))
    app.command("compare")(_metric_info_first(compare, "run_a", "run_b"))
    app.command("score")(score)
    app.command("baselines")(baselines)


_add_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
