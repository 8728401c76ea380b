"""A ranking test: preparation, the blind view, the submit check, the store's checks, the trial page,
export, the CLI, the admin page and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from earshot.listening_app import ranking, store
from earshot.listening_app.cli import listen_app
from earshot.listening_app.prepare import PrepareError, prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.results.listening import RATINGS_TABLE_COLUMNS
from tests.listening_app.test_app import app, texts

CONDITIONS = ["mse-seed0", "bark-seed0"]


def make_ranking(db_url: str, run_dir: Path, name: str = "rank", **settings) -> store.TestInfo:
    prepare_test(run_dir, db_url, items=8, seconds=2.0, name=name, settings=TestSettings(**settings),
                 test_type="ranking")
    store.set_status(db_url, name, "open")
    return store.get_test(db_url, name)


def trial_items(db_url: str, test: store.TestInfo) -> list[store.ItemInfo]:
    return [i for i in store.test_items(db_url, test.id) if not i.training]


def order_value(view, order=None, submit_id=1, **changes) -> dict:
    """What the player sends: this session's keys best first (default: the letters' order)."""
    value = {"nonce": view.nonce, "submit_id": submit_id, "order": list(view.keys) if order is None else order,
             "seconds": {k: 1.5 for k in view.keys}, "plays": {k: 1 for k in view.keys}}
    value.update(changes)
    return value


def ranked(db_url, rater, test, item, best_first: list[str]) -> ranking.RankingAnswer:
    """The answer a rater gives who ranks the conditions in ``best_first`` (through a real view)."""
    view = ranking.make_view(db_url, rater, test, item, 0.0)
    condition = {s.id: s.condition for s in store.item_stimuli(db_url, item.id)}
    keys = sorted(view.keys, key=lambda k: best_first.index(condition[view.stimulus_ids[k]]))
    answer, problems = ranking.check_submission(view, order_value(view, keys), test.settings)
    assert problems == []
    return answer


def test_prepare_makes_one_trial_per_excerpt_with_its_systems_and_the_reference(sqlite_url, run_dir):
    test = make_ranking(sqlite_url, run_dir)
    assert test.type == "ranking" and test.status == "open"
    items = trial_items(sqlite_url, test)
    assert len(items) >= 2 and not any(i.attention for i in items)
    for item in items:
        found = store.item_stimuli(sqlite_url, item.id)
        assert sorted(s.condition for s in found) == sorted([*CONDITIONS, "reference"])
    with pytest.raises(PrepareError, match="at least 2"):
        prepare_test(run_dir, sqlite_url, items=2, seconds=2.0, name="one", conditions=["mse"], test_type="ranking")


def test_the_attention_trial_ranks_the_reference_and_low_anchor_among_the_systems_and_may_open(sqlite_url, run_dir):
    test = make_ranking(sqlite_url, run_dir)
    stimuli = [store.NewStimulus(c, k, b"", 0.0, 100) for c, k in
               [("reference", "reference"), ("anchor-low", "anchor"), ("anchor-mid", "anchor"),
                ("mse-seed0", "system"), ("bark-seed0", "system")]]
    (item,) = ranking.TYPE.make_attention({"item": "speech-0", "category": "speech"}, stimuli, CONDITIONS)
    assert item.attention and item.name == "speech-0 (attention)"
    assert [s.condition for s in item.stimuli] == ["reference", "anchor-low"]  # as many letters as any trial
    (three,) = ranking.TYPE.make_attention({"item": "speech-0", "category": "speech"},
                                           [*stimuli, store.NewStimulus("l1", "system", b"", 0.0, 100)],
                                           ["l1", *CONDITIONS])
    assert [s.condition for s in three.stimuli] == ["reference", "anchor-low", "l1"]
    (normal,) = ranking.TYPE.make_items({"item": "speech-0", "category": "speech"}, stimuli, CONDITIONS)
    plans = [store_plan(i) for i in (item, normal)]
    assert ranking.TYPE.check_items(plans, 1000, 1.0, 2.0) == []
    wrong = store_plan(store.NewItem("x", "speech", [stimuli[0], stimuli[2], *stimuli[3:]]))  # the mid anchor
    assert ranking.TYPE.check_items([wrong], 1000, 1.0, 2.0) == [
        "x: a ranking trial has no anchors (an attention trial, the low anchor only)"]
    one = store_plan(store.NewItem("y", "speech", [stimuli[0], stimuli[3]]))
    assert ranking.TYPE.check_items([one], 1000, 1.0, 2.0) == ["y: a ranking trial needs at least two systems"]
    # Stored and served: the reference is ranked among the letters, and labelled beside them too.
    with store.engine_for(sqlite_url).begin() as conn:
        conn.execute(store.items.update().where(store.items.c.id == trial_items(sqlite_url, test)[0].id)
                     .values(attention=True))
    first = trial_items(sqlite_url, test)[0]
    rater = store.add_rater(sqlite_url, test.name)
    view = ranking.make_view(sqlite_url, rater, test, first, 0.0)
    assert len(view.keys) == 3 and view.unrated_kinds == ()  # this one: the reference too among the systems
    assert view.component_args["reference"] is not None


def store_plan(item: store.NewItem):
    from earshot.listening_app.rules import ItemPlan

    return ItemPlan(item.name, [s.condition for s in item.stimuli], [s.kind for s in item.stimuli],
                    [s.samples for s in item.stimuli])


def test_the_view_is_blind_stable_per_token_and_plays_the_reference_labelled_but_unranked(sqlite_url, run_dir):
    test = make_ranking(sqlite_url, run_dir, name="secret-name")
    item = trial_items(sqlite_url, test)[0]
    rater = store.add_rater(sqlite_url, test.name)
    first = ranking.make_view(sqlite_url, rater, test, item, 0.0)
    again = ranking.make_view(sqlite_url, rater, test, item, 1.0)
    assert [first.stimulus_ids[k] for k in first.keys] == [again.stimulus_ids[k] for k in again.keys]
    assert set(first.keys).isdisjoint(again.keys) and first.nonce != again.nonce
    kinds = {s.id: s.kind for s in store.item_stimuli(sqlite_url, item.id)}
    assert sorted(kinds[i] for i in first.stimulus_ids.values()) == ["system", "system"]
    args = first.component_args
    assert args["mode"] == "ranking" and [s["label"] for s in args["stimuli"]] == ["A", "B"]
    # Raters do not all see the systems in one order (the order is drawn per token; 40 raters all
    # drawing one order of two: a chance of 2 in 2^40).
    orders = {tuple(ranking.make_view(sqlite_url, store.add_rater(sqlite_url, test.name), test, item, 0.0)
                    .stimulus_ids.values()) for _ in range(40)}
    assert len(orders) == 2
    sent = json.dumps({**args, "reference": None,
                       "stimuli": [{k: v for k, v in s.items() if k != "audio"} for s in args["stimuli"]]})
    for secret in [*CONDITIONS, "mse", "bark", item.name, test.name, str(run_dir)]:
        assert secret not in sent
    audio = [args["reference"], *(s["audio"] for s in args["stimuli"])]
    assert len(set(audio)) == 3


def test_the_check_refuses_incomplete_forged_and_oversized_values_and_says_what_is_missing(sqlite_url, run_dir):
    test = make_ranking(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name)
    view = ranking.make_view(sqlite_url, rater, test, trial_items(sqlite_url, test)[0], 0.0)
    a, b = view.keys
    check = lambda value: ranking.check_submission(view, value, test.settings)  # noqa: E731
    assert check(order_value(view, [b])) == (None, ["Put every version in order; not placed yet: A."])
    assert check(order_value(view, [], plays={a: 1})) == (None, [
        "Put every version in order; not placed yet: A, B.",
        "Play every version before you submit; not played yet: B."])
    assert check(order_value(view, nonce="f" * 16))[1] == [
        "this answer belongs to another trial or session: reload the page"]
    for order in ([a, a], [a, b, "0123456789ab"], [a, 2], "AB"):
        answer, problems = check(order_value(view, order))
        assert answer is None and ("not valid" in problems[0] or "each once" in problems[0]), problems
    assert check(order_value(view, plays={a: 1, "forged": 1}))[1] == [
        "the player sent a play record for stimuli that are not in this trial"]
    assert check(order_value(view, plays={a: True, b: 1}))[1] == ["the play record of A is not valid"]
    assert check(order_value(view, seconds={a: float("inf"), b: 1.0}))[1] == ["the play record of A is not valid"]
    assert check(order_value(view, padding="x" * 20_000))[1] == ["the player sent a value that is too large"]
    assert check(["not", "a", "dict"])[1] == ["the player sent a value that is not valid"]
    answer, problems = check(order_value(view, [b, a]))
    assert problems == [] and answer.unrated_kinds == ("reference",)
    assert {view.stimulus_ids[b]: 1.0, view.stimulus_ids[a]: 2.0} == {r.stimulus_id: r.score for r in answer.ratings}
    assert ranking.check_submission(view, order_value(view, [b], plays={}), test.settings.model_copy(
        update={"must_play_all": False}))[1] == ["Put every version in order; not placed yet: A."]


def test_the_store_writes_a_trial_at_once_refuses_what_is_not_a_ranking_and_a_repeat(db_url, run_dir):
    """On SQLite and PostgreSQL alike."""
    test = make_ranking(db_url, run_dir)
    rater = store.add_rater(db_url, test.name, "ann")
    first, second = trial_items(db_url, test)[:2]
    systems = [s for s in store.item_stimuli(db_url, first.id) if s.kind == "system"]
    reference = next(s for s in store.item_stimuli(db_url, first.id) if s.kind == "reference")
    save = lambda scores, **kw: ranking.save(db_url, rater.token, first.id, ranking.RankingAnswer(  # noqa: E731
        [store.Rating(s.id, r, 1, 1.0) for s, r in zip(kw.get("stimuli", systems), scores)],
        kw.get("unrated", ("reference",))), 2.0)
    for scores in ([1, 1], [1, 3], [0, 1], [2, 2]):
        with pytest.raises(store.StoreError, match="the ranks must be 1 to 2, each once"):
            save(scores)
    with pytest.raises(store.StoreError, match="do not match"):  # the reference is played, never ranked
        save([1, 2, 3], stimuli=[*systems, reference])
    with pytest.raises(store.StoreError, match="do not match"):  # a trial that ranks it is an attention trial
        save([1, 2], unrated=())
    other = store.item_stimuli(db_url, second.id)[1]
    with pytest.raises(store.StoreError, match="do not match"):
        save([1, 2], stimuli=[systems[0], other])
    with pytest.raises(store.StoreError, match="takes RANKING answers, not MUSHRA ones"):
        store.submit_trial(db_url, rater.token, first.id, [store.Rating(s.id, 1 + i, 1, 1) for i, s in
                                                               enumerate(systems)], 2)
    assert store.export_frame(db_url, test.name).empty  # nothing of the refused submits was written
    save([2, 1])
    with pytest.raises(store.StoreError, match="submitted already"):
        save([1, 2])
    frame = store.export_frame(db_url, test.name)
    assert list(frame.columns) == RATINGS_TABLE_COLUMNS and len(frame) == 2
    assert (frame["type"] == "ranking").all() and frame["score"].isna().all()
    assert dict(zip(frame["condition"], frame["rank"])) == {systems[0].condition: 2, systems[1].condition: 1}
    assert frame["item"].tolist() == [first.name] * 2 and set(frame["kind"]) == {"system"}


def send(at: AppTest, value) -> AppTest:
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    at.session_state[f"player-{view.nonce}"] = value
    return at.run()


def test_the_trial_page_saves_one_ranking_per_submit_refuses_bad_ones_and_resumes_after_a_reload(
        sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_ranking(sqlite_url, run_dir)
    total = len(trial_items(sqlite_url, test))
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    at = app(rater.token, "views/trial.py")
    assert "Put the versions in order" in texts(at)
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    assert view.component_args["mode"] == "ranking"
    send(at, order_value(view, [view.keys[1]]))
    assert "not placed yet: A." in texts(at)
    send(at, order_value(view, submit_id=2, nonce="f" * 16))
    assert "another trial or session" in texts(at)
    assert store.export_frame(sqlite_url, test.name).empty
    send(at, order_value(view, submit_id=3))
    assert not at.exception and f"Trial 2 of {total}" in str(at.get("progress")[0].proto)
    saved = store.export_frame(sqlite_url, test.name)
    assert sorted(saved["rank"].tolist()) == [1, 2]
    at.session_state[f"player-{view.nonce}"] = order_value(view, submit_id=4, order=view.keys[::-1])  # a replay
    at.run()
    assert store.export_frame(sqlite_url, test.name)["rank"].tolist() == saved["rank"].tolist()
    reloaded = app(rater.token, "views/trial.py")  # a new session: the next trial, not the first again
    assert f"Trial 2 of {total}" in str(reloaded.get("progress")[0].proto)


def answer_everything(db_url, test, raters: dict[str, list[str]]) -> None:
    """Each rater ranks every trial in their order of the conditions (best first)."""
    for name, best_first in raters.items():
        rater = store.add_rater(db_url, test.name, name)
        for item in trial_items(db_url, test):
            ranking.save(db_url, rater.token, item.id, ranked(db_url, rater, test, item, best_first), 3.0)


def test_prepare_and_analyze_from_the_command_line_and_an_exported_csv_reads_back(sqlite_url, run_dir, tmp_path):
    runner = CliRunner()
    made = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "ranking", "--items", "2", "--seconds", "2",
                                      "--name", "cli-rank", "--open", "--db", sqlite_url])
    assert made.exit_code == 0, made.output
    assert ("Ranking test cli-rank: 2 trials, each ranking mse-seed0, bark-seed0 best first against the labelled "
            "reference") in " ".join(made.output.split())
    test = store.get_test(sqlite_url, "cli-rank")
    answer_everything(sqlite_url, test, {"r1": ["bark-seed0", "mse-seed0"], "r2": ["bark-seed0", "mse-seed0"],
                                         "r3": ["mse-seed0", "bark-seed0"]})
    from earshot.benchmark.cli.app import app as earshot_app

    analysed = runner.invoke(earshot_app, ["listen", "analyze", "cli-rank", "--db", sqlite_url, "--json"])
    assert analysed.exit_code == 0, analysed.output
    document = json.loads(analysed.stdout)
    (means,) = [t for t in document["tables"] if t["key"] == "ranking-means"]
    # bark: ranks 1, 1 (r1), 1, 1 (r2), 2, 2 (r3): mean of rater means (1 + 1 + 2) / 3 = 1.33; best 4 of 6.
    assert [r[0] for r in means["rows"]] == ["bark-seed0", "mse-seed0"]
    best = means["rows"][0]
    assert best[1:3] == ["3", "6"] and best[3].startswith("1.33") and best[4] == "4 of 6"
    # k = 2, n = 6, R = (8, 10): χ² = 12 / (6·2·3) · (64 + 100) − 3·6·3 = 54.667 − 54 = 0.667.
    assert document["tests"]["cli-rank"]["friedman"]["statistic"] == pytest.approx(2 / 3)
    (pairs,) = [t for t in document["tables"] if t["key"] == "ranking-pairwise"]
    assert pairs["rows"][0][:3] == ["bark-seed0 − mse-seed0", "6", "-0.33"]
    exported = store.export_frame(sqlite_url, "cli-rank")
    exported.to_csv(tmp_path / "rank.csv", index=False)
    from_file = runner.invoke(earshot_app, ["listen", "analyze", "--ratings", str(tmp_path / "rank.csv"), "--json"])
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.stdout)["tables"][0]["rows"] == means["rows"]
    exported.drop(columns=["rank"]).to_csv(tmp_path / "broken.csv", index=False)
    broken = runner.invoke(earshot_app, ["listen", "analyze", "--ratings", str(tmp_path / "broken.csv")])
    assert broken.exit_code != 0 and "broken.csv: row 2: a ranking row needs column(s) rank" in " ".join(
        broken.output.split()) and "Traceback" not in broken.output


def test_the_admin_page_and_the_report_show_a_ranking_test(sqlite_url, run_dir, monkeypatch, tmp_path):
    from earshot.results.report import build_sections, render_markdown
    from tests.listening_app.test_admin import _log_in

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    test = make_ranking(sqlite_url, run_dir)
    answer_everything(sqlite_url, test, {"ann": ["mse-seed0", "bark-seed0"], "bob": ["mse-seed0", "bark-seed0"]})
    at = _log_in(app(page="views/admin.py"))
    assert not at.exception
    assert "Live summary (mean rank per condition, Friedman test)" in [h.value for h in at.subheader]
    frames = {tuple(df.value.columns[:2]): df.value for df in at.dataframe}
    assert frames["condition", "raters"]["condition"].tolist() == ["mse-seed0", "bark-seed0"]
    run, sections = build_sections(run_dir, ratings=[("rank", store.export_frame(sqlite_url, test.name))])
    text = render_markdown(run, sections, tmp_path)
    trials = 2 * len(trial_items(sqlite_url, test))
    assert "test rank (Ranking)" in text
    assert f"| mse-seed0 | 2 | {trials} | **1.00 [1.00, 1.00]** | {trials} of {trials} |" in text
    assert "Friedman test over the 2 conditions" in text
    assert "Metrics against ears" in text and "mean rank per condition (1 = best) with 95 % intervals" in text
