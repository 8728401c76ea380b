"""The report on a real tiny run (trained and evaluated on the CPU) with simulated raters."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from earshot.benchmark.cli.results_commands import analyze, compare, report
from earshot.results.report import build_sections, example_items, render_latex, render_markdown, write_report
from earshot.results.store import load_run

SECTIONS = ("run", "training", "metrics", "claims", "listen", "listening")


@pytest.fixture(autouse=True)
def no_database(monkeypatch, tmp_path):
    # Never read or create a real listening database from a test.
    monkeypatch.setenv("EARSHOT_DB", f"sqlite:///{tmp_path / 'absent' / 'listening.sqlite'}")


def _simulated_ratings(run_dir: Path, path: Path) -> Path:
    """Eight raters: jobs scored around a per-loss level; one rater fails post-screening
    (hidden reference at 70), one skipped an item."""
    jobs = list(json.loads((run_dir / "run.json").read_text())["jobs"])
    items = [e["item"] for e in json.loads((run_dir / "excerpts.json").read_text())]
    rng = np.random.default_rng(0)
    rows = []
    for r in range(8):
        rater = "r-bad" if r == 0 else f"r{r}"
        for item in items:
            if rater == "r7" and item == items[-1]:
                continue
            for job in jobs:
                level = 65 if job.startswith("bark") else 45
                rows.append((rater, item, job, float(np.clip(level + rng.normal(0, 8), 0, 100))))
            rows.append((rater, item, "reference", 70.0 if rater == "r-bad" else 100.0))
            rows.append((rater, item, "anchor-low", 15.0))
            rows.append((rater, item, "anchor-mid", 45.0))
    pd.DataFrame(rows, columns=["rater", "item", "condition", "score"]).to_csv(path, index=False)
    return path


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    return text, page


def _losses(run_dir: Path) -> list[str]:
    return sorted({j["loss"] for j in json.loads((run_dir / "run.json").read_text())["jobs"].values()})


def test_html_report_is_complete_and_self_contained(tiny_run_copy, tmp_path):
    run_dir = tiny_run_copy  # the report is written into the run
    ratings = _simulated_ratings(run_dir, tmp_path / "ratings.csv")
    path = write_report(run_dir, ratings=ratings)
    assert path == run_dir / "report" / "index.html"
    text, page = _parse(path)
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert set(SECTIONS) <= ids
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), f"<{tag} {key}={attrs[key][:40]}> leaves the file"
        assert tag not in ("script", "link", "iframe")
    assert "@import" not in text and "url(" not in text
    audio = [attrs for tag, attrs in page.tags if tag == "audio"]
    items = len(example_items(load_run(run_dir)))
    assert items == 3
    assert len(audio) == items * (len(_losses(run_dir)) + 2)  # the reference, each loss, the linear baseline
    assert all(a["src"].startswith("data:audio/wav;base64,") for a in audio)
    # A player shows its length before it is pressed: the browser reads it, and the caption says it.
    assert all(a["preload"] == "metadata" for a in audio)
    captions = re.findall(r'<figure class="audio"><figcaption>([^<]*)</figcaption>', text)
    assert len(captions) == len(audio) and all(re.search(r"\(\d+(\.\d+)? s\)$", c) for c in captions), captions
    assert sum(1 for tag, attrs in page.tags if tag == "img" and attrs["src"].startswith("data:image/png")) >= 6
    for phrase in ("Post-screening", "8 before, 7 after", "r-bad", "Friedman", "Wilcoxon", "Metrics against ears",
                   "Spearman", "Declared hypotheses", "the seed&#x27;s default set", "mse-seed0", "rater r7",
                   "Training time summed"):

        assert phrase in text, phrase


def test_markdown_and_latex(tiny_run, tmp_path):
    # One build, both renderers (write_report does the same per format; building is the slow part).
    run, sections = build_sections(tiny_run, ratings=_simulated_ratings(tiny_run, tmp_path / "ratings.csv"))
    text = render_markdown(run, sections, tmp_path)
    pngs = [line.split("(")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert pngs and all((tmp_path / name).is_file() for name in pngs)
    assert "## Listening tests" in text and "| metric |" in text and "(../recon/mse-seed0/" in text
    tex = render_latex(run, sections)
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") >= 5
    assert "\\toprule" in tex and "\\bottomrule" in tex and "hf\\_energy\\_ratio\\_db\\_2k" in tex
    with pytest.raises(ValueError, match="unknown report format"):
        write_report(tiny_run, format="pdf")


def test_the_latex_tables_compile_and_fit_the_page(tiny_run, tmp_path):
    """pdflatex (installed by ``make test``) on the tables in a minimal article: no error, nothing too wide."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not found: apt-get install texlive-latex-base texlive-latex-recommended")
    run, sections = build_sections(tiny_run, ratings=_simulated_ratings(tiny_run, tmp_path / "ratings.csv"))
    (tmp_path / "tables.tex").write_text(render_latex(run, sections), encoding="utf-8")
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs,array,graphicx}\n"
        "\\begin{document}\n\\input{tables.tex}\n\\end{document}\n", encoding="utf-8")
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert done.returncode == 0, [line for line in log.splitlines() if line.startswith("!")]
    assert "Overfull \\hbox" not in log
    assert (tmp_path / "paper.pdf").stat().st_size > 0


def test_markdown_again_removes_only_the_plots_it_no_longer_links(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("checkpoint.pt", "report"))
    with_test = write_report(run_dir, format="md", ratings=_simulated_ratings(run_dir, tmp_path / "ratings.csv"))
    mushra = sorted(p.name for p in with_test.parent.glob("mushra-*.png"))
    assert mushra
    mine = with_test.parent / "my-figure.png"
    mine.write_bytes(b"not the report's")
    again = write_report(run_dir, format="md")
    assert not list(again.parent.glob("mushra-*.png"))
    assert mine.read_bytes() == b"not the report's"
    linked = [line.split("(")[1].rstrip(")") for line in again.read_text().splitlines() if line.startswith("![")]
    assert linked and all((again.parent / name).is_file() for name in linked)


def test_failed_job_and_no_test_render_with_notes(tiny_run, tmp_path):
    run_dir = tmp_path / "partial"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("checkpoint.pt", "report"))
    record = json.loads((run_dir / "run.json").read_text())
    for job in ("bark-seed0", "bark-seed1"):
        record["jobs"][job].update(status="failed", message="loss became NaN at step 7")
        shutil.rmtree(run_dir / "recon" / job)
    (run_dir / "run.json").write_text(json.dumps(record))
    metrics = pd.read_parquet(run_dir / "metrics.parquet")
    metrics[metrics["loss"] != "bark"].to_parquet(run_dir / "metrics.parquet")
    (run_dir / "jobs" / "bark-seed1" / "train_log.parquet").unlink()

    text, page = _parse(write_report(run_dir))
    assert set(SECTIONS) <= {attrs.get("id") for _, attrs in page.tags}
    for phrase in ("job bark-seed0 is failed: loss became NaN", "no reconstruction by bark", "loss bark: no metrics",
                   "no listening test", "job bark-seed1: no training log", "inconclusive"):
        assert phrase in text, phrase
    assert sum(1 for tag, _ in page.tags if tag == "audio") == 3 * 3  # reference + mse + the baseline pca-16 only


def test_unevaluated_run_and_empty_test(tiny_run, tmp_path):
    run_dir = tmp_path / "bare"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("checkpoint.pt", "report", "metrics.parquet"))
    empty = tmp_path / "empty.csv"
    empty.write_text("rater,item,condition,score\n")
    text, _ = _parse(write_report(run_dir, ratings=empty))
    assert "the run has not been evaluated" in text and "no ratings yet" in text


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(report)
    app.command()(compare)
    listen = typer.Typer()
    listen.command()(analyze)
    app.add_typer(listen, name="listen")
    return app


def test_cli_commands(tiny_run, tmp_path):
    runner = CliRunner()
    ratings = _simulated_ratings(tiny_run, tmp_path / "ratings.csv")
    result = runner.invoke(_app(), ["listen", "analyze", "--ratings", str(ratings)])
    assert result.exit_code == 0, result.output
    assert "8 before, 7 after" in result.output and "r-bad" in result.output
    result = runner.invoke(_app(), ["compare", str(tiny_run), str(tiny_run), "--csv", str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(tmp_path / "c.csv")["difference"].dropna() == 0).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("rater,item,condition,score\nr1,a,mse-seed0,fifty\n")
    result = runner.invoke(_app(), ["report", str(tiny_run), "--ratings", str(bad)])
    assert result.exit_code == 2
    assert "row 2, column 'score'" in result.output
    result = runner.invoke(_app(), ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_an_abx_test_shows_its_pairs_and_the_metrics_against_how_often_pairs_were_told_apart(tiny_run, tmp_path):
    jobs = list(json.loads((tiny_run / "run.json").read_text())["jobs"])
    items = [e["item"] for e in json.loads((tiny_run / "excerpts.json").read_text())]
    rows = [{"type": "abx", "rater": f"r{r}", "item": item, "condition": jobs[0], "kind": "system", "score": np.nan,
             "a": jobs[0], "b": jobs[1], "x": jobs[0], "answer": jobs[0] if r else jobs[1]}
            for r in range(3) for item in items]
    run, sections = build_sections(tiny_run, ratings=[("pairs", pd.DataFrame(rows))])
    text = render_markdown(run, sections, tmp_path)
    listening = text.split("## Listening tests")[1]
    assert "test pairs (ABX)" in listening and f"{min(jobs[:2])} vs {max(jobs[:2])}" in listening
    assert "Metrics against ears" in listening
    # The tiny run has one pair of systems: too few to rank, and the report says why.
    assert "pair-level correlation not computed for every metric: fewer than 3 compared pairs of systems" in listening
