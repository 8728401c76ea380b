"""Declared hypotheses: the file format, the one-line refusals, and the record in the run."""

from __future__ import annotations

from datetime import datetime

import pytest

from earshot.results.hypotheses import (SEED_HYPOTHESES_FILE, HypothesisError, declared_for_run, parse, read,
                                        sha256, validate)
from earshot.results.rundir import RunDir

CATALOG = {
    "stoi": {"higher_is_better": True, "ideal": None, "unit": "0-1", "categories": ["mix", "speech"]},
    "snr": {"higher_is_better": True, "ideal": None, "unit": "dB", "categories": ["drums", "music", "speech"]},
    "hf_energy_ratio_db_2k": {"higher_is_better": None, "ideal": 0.0, "unit": "dB",
                              "categories": ["drums", "music", "speech"]},
    "error_flatness": {"higher_is_better": None, "ideal": None, "unit": "0-1", "categories": ["speech"]},
}

GOOD = """hypotheses:
  - name: l1 is clearer
    metric: stoi
    treatment: l1
    baseline: mse
    direction: higher
    categories: [speech]
    smallest_effect: 0.02
"""


def _one(**fields) -> str:
    entry = {"name": "h", "metric": "stoi", "treatment": "l1", "baseline": "mse", "direction": "higher", **fields}
    return "hypotheses:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in entry.items()) + "\n"


def test_the_seed_default_is_the_three_claims():
    hypotheses, _ = read(SEED_HYPOTHESES_FILE)
    assert [(h.metric, h.treatment, h.baseline, h.direction, h.categories) for h in hypotheses] == [
        ("hf_energy_ratio_db_2k", "bark", "mse", "higher", None), ("stoi", "bark", "mse", "lower", ("speech",)),
        ("error_flatness", "bark", "mse", "lower", None)]
    validate(hypotheses, "seed", CATALOG, ["mse", "bark"])


def test_a_good_file_reads_and_describes_itself():
    (h,) = parse(GOOD, "hyp.yaml")
    assert h.smallest_effect == 0.02 and h.categories == ("speech",)
    assert h.describe("0-1") == "l1 scores higher than mse on stoi (speech), by at least 0.02 0-1"
    validate((h,), "hyp.yaml", CATALOG, ["mse", "l1"])


@pytest.mark.parametrize("text, losses, expected", [
    (_one(metric="sharpness"), ["mse", "l1"], "hyp.yaml: hypothesis 'h': unknown metric 'sharpness' (known: stoi,"),
    (_one(treatment="l2"), ["mse", "l1"], "hyp.yaml: hypothesis 'h': unknown treatment loss 'l2' (this run has: mse, l1)"),
    (_one(baseline="pca-16"), ["mse", "l1"], "hyp.yaml: hypothesis 'h': unknown baseline loss 'pca-16'"),
    (_one(categories="[birdsong]"), ["mse", "l1"],
     "hyp.yaml: hypothesis 'h': unknown category 'birdsong' for metric stoi (it applies to: mix, speech)"),
    (_one(categories="[drums]"), ["mse", "l1"], "hyp.yaml: hypothesis 'h': unknown category 'drums' for metric stoi"),
    (_one(direction="closer-to-ideal"), ["mse", "l1"],
     "hyp.yaml: hypothesis 'h': direction closer-to-ideal, but metric stoi has no ideal value"),
    (_one(direction="better"), None, "hyp.yaml: hypothesis 'h': direction: Input should be 'higher', 'lower' or"),
    (_one(smallest_effect=-1), None, "hyp.yaml: hypothesis 'h': smallest_effect: Input should be greater than"),
    (_one(treatment="mse"), None, "hyp.yaml: hypothesis 'h': treatment and baseline are both 'mse'"),
    (_one(colour="red"), None, "hyp.yaml: hypothesis 'h': colour: Extra inputs are not permitted"),
    ("hypotheses:\n  - metric: stoi\n", None, "hyp.yaml: hypothesis #1: name: Field required"),
    (GOOD + GOOD.removeprefix("hypotheses:\n"), None, "hyp.yaml: hypothesis 'l1 is clearer': the name is used twice"),
    ("hypotheses: {}\n", None, "hyp.yaml: expected a non-empty list of hypotheses under 'hypotheses:'"),
    ("hypotheses: [\n", None, "hyp.yaml: not YAML"),
])
def test_a_bad_file_is_refused_in_one_line_naming_file_hypothesis_and_value(text, losses, expected):
    with pytest.raises(HypothesisError) as error:
        validate(parse(text, "hyp.yaml"), "hyp.yaml", CATALOG, losses)
    message = str(error.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(HypothesisError, match="^.*nope.yaml: cannot read the hypotheses file"):
        read(tmp_path / "nope.yaml")


def test_the_run_records_the_file_its_hash_and_when(tmp_path):
    run = RunDir(tmp_path / "run")
    entry = run.record_hypotheses("hyp.yaml", GOOD)
    assert entry["sha256"] == sha256(GOOD) and entry["source"] == "hyp.yaml" and entry["before_training"]
    assert datetime.fromisoformat(entry["declared_at"]).tzinfo is not None
    assert run.read_record()["hypotheses"] == entry and run.hypotheses_file.read_text() == GOOD
    assert run.record_hypotheses("elsewhere.yaml", GOOD) == entry  # the same content keeps its first record

    declared = declared_for_run(run.path)
    assert declared.when == "before training" and declared.sha256 == sha256(GOOD)
    assert [h.name for h in declared.hypotheses] == ["l1 is clearer"]
    assert declared.declared_at == entry["declared_at"]


def test_a_set_declared_after_a_job_finished_says_so(tmp_path):
    run = RunDir(tmp_path / "run")
    run.job("mse-seed0").write_done({"steps": 1})
    assert run.record_hypotheses("hyp.yaml", GOOD)["before_training"] is False
    assert declared_for_run(run.path).when == "after training started"


def test_a_file_given_later_is_after_the_fact_and_a_bare_run_gets_the_seed_default(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    default = declared_for_run(run.path)
    assert default.when == "nowhere (the run records none)" and len(default.hypotheses) == 3
    given = tmp_path / "later.yaml"
    given.write_text(GOOD)
    run.record_hypotheses("hyp.yaml", GOOD.replace("0.02", "0.05"))
    later = declared_for_run(run.path, given)
    assert later.when == "after the fact" and later.source == str(given) and later.sha256 == sha256(GOOD)
    assert "declared after the fact" in later.describe()
