"""The confirmation stage: candidates, fresh seeds, the report's figures, and (on a real local
Ray with the sleep trainer) retrainings that survive cancel, resume and a dead worker."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from evolver import lifecycle
from evolver.campaign import CampaignSpec, ConfirmSpec, format_validation_error
from evolver.confirmation import (
    build_report,
    choose_candidates,
    confirm_split,
    confirmation_seeds,
    plan,
    shared_training_seed,
)
from evolver.coordinator import Coordinator, CoordinatorSettings
from evolver.store import Store, TrialRecord
from workers import SleepTrialTrainer, WorkerPool

BASE = {"lr0": 0.01, "momentum": 0.937}
T0 = datetime(2026, 12, 6, tzinfo=UTC)


def trial(number, hyp, fitness, *, status="completed", stage="search", seed=None, parents=(), seconds=10.0,
          split="val") -> TrialRecord:
    return TrialRecord(
        campaign_id=1, number=number, generation=number, status=status, attempt=1, hyp=dict(hyp),
        parents=tuple(parents), seed=number if seed is None else seed, worker="w", node_id=None, node_ip=None,
        gpu_id=None, started_at=T0, ended_at=T0 + timedelta(seconds=seconds), metrics={}, fitness=fitness,
        epochs_done=1, error=None, weights_path=None, stage=stage, split=split)


def search_trials():
    return [
        trial(0, BASE, 0.30),
        trial(1, {**BASE, "lr0": 0.02}, 0.50),
        trial(2, {**BASE, "lr0": 0.02}, 0.40),  # the same values again: counts once, by its best trial
        trial(3, BASE, 0.45),  # the base trained again: never a candidate of its own
        trial(4, {**BASE, "lr0": 0.03}, 0.35),
        trial(5, {**BASE, "lr0": 0.04}, 0.60, status="failed"),  # failed: never a candidate
        trial(6, {**BASE, "lr0": 0.05}, 0.20),
    ]


# ----------------------------------------------------------------------------- planning
def test_candidates_are_the_base_then_the_best_distinct_hyperparameters():
    candidates = choose_candidates(search_trials(), BASE, top_k=2)
    assert [c.label for c in candidates] == ["base", "trial 1", "trial 4"]
    assert candidates[0].is_base and candidates[0].source_trial == 3 and candidates[0].search_fitness == 0.45
    assert [c.search_fitness for c in candidates[1:]] == [0.50, 0.35]
    assert len({tuple(sorted(c.hyp.items())) for c in candidates}) == 3
    # Fewer distinct sets than top_k: all of them.
    assert len(choose_candidates(search_trials(), BASE, top_k=10)) == 4


def test_confirmation_seeds_are_fresh_distinct_and_repeat():
    first = confirmation_seeds(5, set(), 3)
    assert len(set(first)) == 3 and confirmation_seeds(5, set(), 3) == first
    # A seed a search trial used is skipped, whatever the stream drew.
    assert first[0] not in confirmation_seeds(5, {first[0]}, 3)


def test_plan_retrains_every_candidate_with_each_fresh_seed_base_first():
    search = search_trials()
    planned = plan(ConfirmSpec(top_k=2, seeds=2), 0, search)
    assert len(planned) == 6
    assert [p.parents for p in planned] == [(), (1,), (4,)] * 2  # seed-major: a cancel leaves matched pairs
    assert planned[0].hyp == BASE and planned[1].hyp == search[1].hyp
    seeds = [p.seed for p in planned]
    assert len(set(seeds[:3])) == 1 and len(set(seeds[3:])) == 1 and seeds[0] != seeds[3]
    assert not set(seeds) & {t.seed for t in search}
    assert plan(ConfirmSpec(top_k=2, seeds=2), 0, search) == planned  # a resumed coordinator plans the same
    assert plan(ConfirmSpec(enabled=False), 0, search) == []
    assert plan(ConfirmSpec(), 0, [trial(0, BASE, None, status="failed")]) == []


# ----------------------------------------------------------------------------- the report
def confirmed_campaign(spec: CampaignSpec, fitnesses: dict[tuple[int, ...], list[float]]):
    search = search_trials()
    trials, number = list(search), len(search)
    for p in plan(spec.confirm, spec.seed, search):
        value = fitnesses[p.parents].pop(0)
        trials.append(trial(number, p.hyp, value, stage="confirm", seed=p.seed, parents=p.parents, seconds=5.0,
                            split="test"))
        number += 1
    return trials


def spec_of(**confirm) -> CampaignSpec:
    return CampaignSpec(generations=7, population=1, confirm=confirm)


def test_the_winner_is_the_best_confirmed_mean_not_the_luckiest_trial():
    spec = spec_of(top_k=2, seeds=3)
    trials = confirmed_campaign(spec, {(): [0.30, 0.32, 0.34], (1,): [0.31, 0.33, 0.35], (4,): [0.40, 0.41, 0.42]})
    report = build_report(spec, trials, campaign_ended=True)
    assert report.state == "confirmed" and report.split == "test" and not report.split_selected
    winner, base = report.winner, report.base
    assert winner.candidate.label == "trial 4"  # the search ranked it below trial 1
    assert winner.mean == pytest.approx(0.41) and winner.se == pytest.approx(0.01 / math.sqrt(3))
    assert base.mean == pytest.approx(0.32) and base.se == pytest.approx(0.02 / math.sqrt(3))
    assert report.difference_se == pytest.approx(0.09 / math.hypot(0.01 / math.sqrt(3), 0.02 / math.sqrt(3)))
    assert report.raw_best.candidate.label == "trial 1" and report.raw_best.optimism == pytest.approx(0.50 - 0.33)
    assert winner.optimism == pytest.approx(0.35 - 0.41)
    # search fitness 0.45, 0.50, 0.35 -> confirmed 0.32, 0.33, 0.41: the order reversed.
    assert report.spearman == pytest.approx(-0.5)
    assert report.search_seconds == 70.0 and report.confirm_seconds == 45.0
    assert report.cost_share == pytest.approx(45 / 115)
    text = "\n".join(report.summary_lines())
    assert "confirmed" in text and "trial 4" in text and "0.41000" in text and "SE vs base" in text


def test_a_stage_that_did_not_finish_is_not_confirmed_and_names_no_winner():
    spec = spec_of(top_k=2, seeds=2)
    trials = confirmed_campaign(spec, {(): [0.3, 0.3], (1,): [0.3, 0.3], (4,): [0.4, 0.4]})
    unfinished = trials[:-1] + [trial(trials[-1].number, trials[-1].hyp, None, status="running", stage="confirm",
                                      parents=trials[-1].parents)]
    assert build_report(spec, unfinished, campaign_ended=False).state == "confirming"
    ended = build_report(spec, unfinished, campaign_ended=True)
    assert ended.state == "not confirmed" and ended.winner is None
    assert any("not confirmed" in line for line in ended.summary_lines())
    # A search cancelled before its end: nothing to confirm yet.
    assert build_report(spec, search_trials()[:3], campaign_ended=True).state == "not confirmed"
    assert build_report(spec_of(enabled=False), trials, campaign_ended=True).state == "off"


def test_scored_on_val_says_it_is_the_selecting_split():
    spec = CampaignSpec(generations=7, data="data.yaml", confirm={"split": "val"})
    report = build_report(spec, search_trials(), campaign_ended=False)
    assert report.split_selected and "selected them" in report.summary_lines()[0]


def test_confirm_split_prefers_the_datas_test_split(tmp_path):
    with_test, without = tmp_path / "a.yaml", tmp_path / "b.yaml"
    with_test.write_text(yaml.safe_dump({"train": "i", "val": "i", "test": "t", "names": ["x"]}))
    without.write_text(yaml.safe_dump({"train": "i", "val": "i", "names": ["x"]}))
    assert confirm_split(CampaignSpec(data=str(with_test))) == "test"
    assert confirm_split(CampaignSpec(data=str(without))) == "val"
    assert confirm_split(CampaignSpec(data=str(with_test), confirm={"split": "val"})) == "val"
    assert confirm_split(CampaignSpec(data="synthetic")) == "test"


# ----------------------------------------------------------------------------- the spec
def test_confirm_block_on_off_and_bad_values_name_the_field():
    assert CampaignSpec().confirm.enabled and CampaignSpec().confirm.trials() == 8  # (3 + base) x 2 seeds
    assert not CampaignSpec(confirm=False).confirm.enabled and CampaignSpec(confirm=False).confirm.trials() == 0
    assert CampaignSpec(confirm={"epochs": 30}).epochs_of("confirm") == 30
    assert CampaignSpec(epochs=7).epochs_of("confirm") == 7
    for bad, field in (({"top_k": 0}, "confirm.top_k"), ({"seeds": 0}, "confirm.seeds"),
                       ({"split": "holdout"}, "confirm.split"), ({"epochs": -1}, "confirm.epochs"),
                       ({"topk": 3}, "confirm.topk")):
        with pytest.raises(ValidationError) as err:
            CampaignSpec(confirm=bad)
        assert format_validation_error(err.value).startswith(field), format_validation_error(err.value)
    with pytest.raises(ValidationError, match="trial_seeds"):
        CampaignSpec(trial_seeds="same")


# ----------------------------------------------------------------------------- on Ray
FAST = CoordinatorSettings(poll_seconds=0.1, progress_seconds=0.2, control_seconds=0.2, grow_seconds=1.0,
                           progress=False)


def make_campaign(tmp_path, **fields) -> tuple[Store, int]:
    store = Store.open(Store.sqlite_url(tmp_path / "evolver.db"))
    spec = CampaignSpec(name="confirm", trainer="sleep", epochs=2, cpu_workers=2, **fields)
    return store, store.create_campaign(spec.name, spec.to_json_dict(), str(tmp_path / "run"))


def run(store, cid, trainer=None, pool_out=None):
    pool = WorkerPool(trainer or SleepTrialTrainer(min_seconds=0.05, max_seconds=0.15), cpu_workers=2)
    if pool_out is not None:
        pool_out.append(pool)
    try:
        return Coordinator(store, cid, pool, FAST).run()
    finally:
        pool.shutdown()


def test_a_campaign_confirms_its_best_candidates_and_writes_the_confirmed_winner(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, generations=8, population=1, confirm={"top_k": 2, "seeds": 2})
    outcome = run(store, cid)
    trials = store.trials(cid)
    search = [t for t in trials if t.stage == "search"]
    retrainings = [t for t in trials if t.stage == "confirm"]
    assert outcome.status == "completed" and len(search) == 8 and len(retrainings) == 6
    assert outcome.completed == 14
    assert [t.number for t in retrainings] == list(range(8, 14))  # after the search, in plan order
    assert all(t.split == "test" and t.status == "completed" for t in retrainings)  # synthetic has a test split
    assert not {t.seed for t in retrainings} & {t.seed for t in search}
    assert not any(g.index >= 8 for g in store.generations(cid))  # retrainings belong to no generation
    report = build_report(CampaignSpec.model_validate(store.campaign(cid).spec), trials, campaign_ended=True)
    assert report.state == "confirmed" and report.winner is not None
    header = (tmp_path / "run" / "hyp_evolved.yaml").read_text()
    assert "confirmation: confirmed" in header and f"winner: {report.winner.candidate.label}" in header
    assert yaml.safe_load(header) == pytest.approx({**report.winner.candidate.hyp})
    assert len((tmp_path / "run" / "evolve.csv").read_text().splitlines()) == 1 + 8  # search trials only


def test_shared_trial_seeds_train_every_search_trial_with_one_seed(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, generations=5, population=1, seed=3, trial_seeds="shared",
                               confirm={"top_k": 1, "seeds": 2})
    run(store, cid)
    trials = store.trials(cid)
    assert {t.seed for t in trials if t.stage == "search"} == {shared_training_seed(3)}
    fresh = {t.seed for t in trials if t.stage == "confirm"}
    assert len(fresh) == 2 and shared_training_seed(3) not in fresh


def test_cancel_and_resume_mid_confirmation_reruns_nothing_finished(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, generations=4, population=1, confirm={"top_k": 2, "seeds": 2})
    stopper = Store.open(Store.sqlite_url(tmp_path / "evolver.db"))

    def cancel_in_confirmation():
        while not any(t.stage == "confirm" and t.status == "completed" for t in stopper.trials(cid)):
            time.sleep(0.05)
        lifecycle.cancel(stopper, cid)

    thread = threading.Thread(target=cancel_in_confirmation)
    thread.start()
    outcome = run(store, cid, SleepTrialTrainer(min_seconds=0.3, max_seconds=0.6))
    thread.join()
    assert outcome.status == "cancelled"
    before = {t.number: t for t in store.trials(cid) if t.stage == "confirm"}
    finished_before = {n: t for n, t in before.items() if t.status == "completed"}
    assert finished_before and len(finished_before) < 6
    spec = CampaignSpec.model_validate(store.campaign(cid).spec)
    report = build_report(spec, store.trials(cid), campaign_ended=True)
    assert report.state == "not confirmed" and report.winner is None
    assert "not confirmed" in (tmp_path / "run" / "hyp_evolved.yaml").read_text()

    lifecycle.reopen(store, cid)
    outcome = run(store, cid)
    after = {t.number: t for t in store.trials(cid) if t.stage == "confirm"}
    assert outcome.status == "completed" and len(after) == 6 and len(store.trials(cid)) == 10
    for number, finished in finished_before.items():  # finished retrainings were not trained again
        assert after[number].attempt == 1 and after[number].ended_at == finished.ended_at
    assert all(after[n].attempt == 2 for n, t in before.items() if t.status != "completed")
    assert [t.hyp for t in after.values()] == [t.hyp for t in plan(spec.confirm, spec.seed, [
        t for t in store.trials(cid) if t.stage == "search"])]
    assert build_report(spec, store.trials(cid), campaign_ended=True).state == "confirmed"


def test_a_worker_dying_under_a_retraining_requeues_it(local_ray, tmp_path):
    store, cid = make_campaign(tmp_path, generations=3, population=1, confirm={"top_k": 1, "seeds": 2})
    pools, killed = [], []
    watcher = Store.open(Store.sqlite_url(tmp_path / "evolver.db"))

    def kill_under_a_retraining():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            running = [t for t in watcher.trials(cid, statuses=("running",)) if t.stage == "confirm"]
            if running and pools:
                worker = next(w for w in pools[0].workers if w.name == running[0].worker)
                ray.kill(worker.actor, no_restart=True)
                killed.append(running[0].number)
            time.sleep(0.02)

    import ray

    thread = threading.Thread(target=kill_under_a_retraining)
    thread.start()
    outcome = run(store, cid, SleepTrialTrainer(min_seconds=1.0, max_seconds=1.5), pool_out=pools)
    thread.join()
    assert killed, "no retraining ran long enough to be killed"
    trials = store.trials(cid)
    assert outcome.status == "completed" and len(trials) == 3 + 4
    assert store.trial(cid, killed[0]).attempt == 2 and store.trial(cid, killed[0]).status == "completed"
    assert np.isfinite([t.fitness for t in trials]).all()


def test_a_test_split_that_points_at_nothing_is_refused_before_anything_is_stored(tmp_path, capsys):
    from evolver.cli import main

    import cv2
    import numpy as np

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((32, 32, 3), np.uint8))  # only test is wrong
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"train": "images", "val": "images", "test": "../test/images", "names": ["x"]}))
    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump({"name": "c", "data": "data.yaml"}))
    db = Store.sqlite_url(tmp_path / "evolver.db")
    assert main(["create", str(spec), "--db", db, "--project", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "data:" in err and "'test'" in err and "../test/images" in err and "Traceback" not in err
    with Store.open(db) as store:
        assert store.campaigns() == []
    # A confirm.split the data lacks is named too.
    data.write_text(yaml.safe_dump({"train": "images", "val": "images", "names": ["x"]}))
    spec.write_text(yaml.safe_dump({"name": "c", "data": "data.yaml", "confirm": {"split": "test"}}))
    assert main(["create", str(spec), "--db", db, "--project", str(tmp_path)]) != 0
    assert "confirm.split:" in capsys.readouterr().err
