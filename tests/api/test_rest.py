"""REST over httpx against the real app: a real campaign (dry-run trainer, real coordinator on a
local Ray, its confirmation stage retraining the best candidate and the base with 2 seeds) is
submitted, read back through every read endpoint on SQLite and on PostgreSQL, and compared with
what SQL holds; then cancel, resume, 404s, multipart submission, and campaigns of the population GA
and BLX searchers (and their refused specs). The confirmation endpoint's states are tested on
campaigns written into the store in test_confirmation.py."""

from __future__ import annotations

import csv
import io
import time

import pytest
import yaml

from fastapi.testclient import TestClient

from api.app import create_app
from evolver.store import Store
from tests.api.helpers import api_settings, running_app, sleep_spec, wait_for

SUMMARY_KEYS = {"id", "name", "status", "created_at", "trials_total", "trials_finished", "trials_running",
                "best_fitness", "links"}
OUT_KEYS = SUMMARY_KEYS | {"spec", "job_id", "error", "counts", "artefacts"}
TRIAL_KEYS = {"number", "generation", "stage", "split", "status", "attempt", "fitness", "metrics", "hyp", "parents", "worker",
              "node_ip", "gpu_id", "started_at", "ended_at", "duration_seconds", "epochs_done", "current_epoch",
              "error"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def finished(request, tmp_path_factory, local_ray):
    """(client, store, campaign id, POST response) of a completed 3x2 dry-run campaign, then its 4
    retrainings (base and best candidate, 2 seeds each): trials 6-9."""
    root = tmp_path_factory.mktemp(request.param)
    db_url = None
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_server").new_database()
    settings = api_settings(root, db_url)
    with running_app(settings) as (client, _launcher):
        created = client.post("/campaigns", json=sleep_spec(confirm={"top_k": 1, "seeds": 2}))
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        wait_for(client, campaign_id)
        with Store.open(settings.database_url()) as store:
            yield client, store, campaign_id, created


def test_submit_answers_201_with_links_and_job(finished):
    _, _, cid, created = finished
    body = created.json()
    assert set(body) == OUT_KEYS
    assert created.headers["location"] == f"/campaigns/{cid}"
    assert body["links"] == {"self": f"/campaigns/{cid}", "view": f"/campaigns/{cid}/view",
                             "generations": f"/campaigns/{cid}/generations", "trials": f"/campaigns/{cid}/trials",
                             "confirmation": f"/campaigns/{cid}/confirmation",
                             "hyp_evolved": f"/campaigns/{cid}/hyp_evolved.yaml",
                             "evolve_csv": f"/campaigns/{cid}/evolve.csv"}
    assert body["job_id"].startswith(f"thread-{cid}-")
    assert body["spec"]["generations"] == 3 and body["trials_total"] == 6 + 4


def test_campaign_reads_match_sql(finished):
    client, store, cid, _ = finished
    trials = store.trials(cid)
    best = max(t.fitness for t in trials if t.status == "completed" and t.stage == "search")
    listing = client.get("/campaigns").json()
    [summary] = [c for c in listing if c["id"] == cid]
    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "completed" and summary["trials_finished"] == 10 and summary["trials_running"] == 0
    assert summary["best_fitness"] == pytest.approx(best)
    one = client.get(f"/campaigns/{cid}").json()
    assert set(one) == OUT_KEYS and one["counts"] == {"completed": 10}
    assert one["job_id"] == store.campaign(cid).job_id


def test_generations_match_sql(finished):
    client, store, cid, _ = finished
    body = client.get(f"/campaigns/{cid}/generations").json()
    stored = store.generations(cid)
    assert [g["index"] for g in body] == [0, 1, 2]
    for out, g in zip(body, stored):
        assert set(out) == {"index", "best_fitness", "mean_fitness", "best_trial", "closed_at"}
        assert out["best_fitness"] == pytest.approx(g.best_fitness)
        assert out["mean_fitness"] == pytest.approx(g.mean_fitness)
        assert out["best_trial"] == g.best_trial


def test_confirmation_of_the_real_campaign_matches_sql(finished):
    client, store, cid, _ = finished
    body = client.get(f"/campaigns/{cid}/confirmation").json()
    assert body["state"] == "confirmed" and body["split"] == "test" and body["seeds"] == 2
    assert [c["label"] for c in body["candidates"]][0] == "base" and len(body["candidates"]) == 2
    assert sorted(n for c in body["candidates"] for n in c["trials"]) == [6, 7, 8, 9]
    trials = {t.number: t for t in store.trials(cid)}
    for candidate in body["candidates"]:
        assert candidate["n"] == 2
        assert candidate["fitnesses"] == pytest.approx([trials[n].fitness for n in candidate["trials"]])
        source = trials[candidate["source_trial"]]
        assert source.stage == "search" and candidate["search_fitness"] == pytest.approx(source.fitness)
    assert body["winner"] in {c["label"] for c in body["candidates"]}


def test_trials_filter_sort_paginate(finished):
    client, store, cid, _ = finished
    trials = store.trials(cid)
    page = client.get(f"/campaigns/{cid}/trials", params={"sort": "-fitness"}).json()
    assert page["total"] == 10 and len(page["items"]) == 10
    assert set(page["items"][0]) == TRIAL_KEYS
    fitness = [t["fitness"] for t in page["items"]]
    assert fitness == sorted(fitness, reverse=True)
    by_number = {t.number: t for t in trials}
    first = page["items"][0]
    assert first["hyp"] == pytest.approx(by_number[first["number"]].hyp)
    assert first["duration_seconds"] > 0 and first["worker"] in ("cpu-0", "cpu-1")
    assert client.get(f"/campaigns/{cid}/trials", params={"sort": "fitness"}).json()["items"][0]["fitness"] == min(fitness)
    part = client.get(f"/campaigns/{cid}/trials", params={"sort": "-number", "limit": 2, "offset": 1}).json()
    assert part["total"] == 10 and [t["number"] for t in part["items"]] == [8, 7]
    none = client.get(f"/campaigns/{cid}/trials", params={"status": "failed"}).json()
    assert none == {"total": 0, "items": []}
    both = client.get(f"/campaigns/{cid}/trials", params=[("status", "failed"), ("status", "completed")]).json()
    assert both["total"] == 10
    by_stage = {t["number"]: (t["stage"], t["split"]) for t in page["items"]}
    assert by_stage == {n: ("search", "val") if n < 6 else ("confirm", "test") for n in range(10)}
    assert client.get(f"/campaigns/{cid}/trials", params={"status": "bogus"}).status_code == 422
    assert client.get(f"/campaigns/{cid}/trials", params={"limit": 0}).status_code == 422


def test_trial_detail_has_epoch_curve(finished):
    client, store, cid, _ = finished
    detail = client.get(f"/campaigns/{cid}/trials/3").json()
    assert set(detail) == TRIAL_KEYS | {"epochs"}
    epochs = store.epochs(cid, 3)
    assert [e["epoch"] for e in detail["epochs"]] == [e.epoch for e in epochs] == [0, 1]
    assert detail["epochs"][-1]["fitness"] == pytest.approx(epochs[-1].fitness)
    assert detail["parents"] == list(store.trial(cid, 3).parents)


def test_downloads_are_the_run_folder_files(finished):
    client, store, cid, _ = finished
    response = client.get(f"/campaigns/{cid}/hyp_evolved.yaml")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    winner = client.get(f"/campaigns/{cid}/confirmation").json()
    (hyp,) = [c["hyp"] for c in winner["candidates"] if c["label"] == winner["winner"]]
    assert yaml.safe_load(response.text) == pytest.approx(hyp)  # the confirmed winner, not the raw best
    assert f"winner: {winner['winner']}" in response.text
    rows = list(csv.reader(io.StringIO(client.get(f"/campaigns/{cid}/evolve.csv").text)))
    assert [name.strip() for name in rows[0][:2]] == ["metrics/precision", "metrics/recall"] and len(rows) == 7
    assert client.get(f"/campaigns/{cid}/artefacts/nothing.pt").status_code == 404


def test_metrics_and_health(finished):
    client, _, cid, _ = finished
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    text = client.get("/metrics").text
    assert f'evolver_trials{{campaign="{cid}",status="completed"}} 10' in text
    assert "evolver_busy_workers 0" in text
    assert f'evolver_best_fitness{{campaign="{cid}"}}' in text
    assert f'evolver_trials_per_hour{{campaign="{cid}"}}' in text


def test_unknown_campaign_and_trial_are_404(finished):
    client, _, cid, _ = finished
    for path in ("", "/generations", "/trials", "/trials/0", "/confirmation", "/hyp_evolved.yaml", "/evolve.csv",
                 "/artefacts/x"):
        assert client.get(f"/campaigns/999{path}").status_code == 404, path
    for action in ("cancel", "resume"):
        assert client.post(f"/campaigns/999/{action}").status_code == 404
    assert client.get(f"/campaigns/{cid}/trials/99").status_code == 404
    assert client.get("/campaigns/99999999999999999999").status_code == 422  # beyond SQL's integers


def test_cancel_then_resume(tmp_path, local_ray):
    with running_app(api_settings(tmp_path)) as (client, launcher):
        cid = client.post("/campaigns", json=sleep_spec(generations=40, population=1, epochs=4,
                                                          cpu_workers=1)).json()["id"]
        deadline = time.monotonic() + 90  # a local Ray and its worker start first (30 s was too short under load)
        while client.get(f"/campaigns/{cid}").json()["trials_running"] == 0:
            assert time.monotonic() < deadline, "no trial started within 90 s"
            time.sleep(0.1)
        cancelled = client.post(f"/campaigns/{cid}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        launcher.join(timeout=30)
        body = client.get(f"/campaigns/{cid}").json()
        assert body["status"] == "cancelled" and body["trials_running"] == 0
        assert body["trials_finished"] < 40
        assert client.post(f"/campaigns/{cid}/cancel").status_code == 200  # twice is harmless
        first_job = body["job_id"]
        resumed = client.post(f"/campaigns/{cid}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] in ("queued", "running")
        assert resumed.json()["job_id"] != first_job
        assert client.post(f"/campaigns/{cid}/resume").status_code == 409  # queued or running already
        client.post(f"/campaigns/{cid}/cancel")
        launcher.join(timeout=30)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_cancelled_mid_run_three_times_then_completed_exactly(tmp_path, local_ray, request, backend):
    """POST …/cancel while trials are mid-run, then POST …/resume, three rounds, on SQLite and
    PostgreSQL: completed, with each asked-for trial once (a cancelled attempt's partial metrics
    never collide with its retry's)."""
    db_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    spec = sleep_spec(name="rounds", epochs=3, dry_run_seconds=[2.5, 3.5], generations=6, population=2,
                      confirm=False)
    with running_app(api_settings(tmp_path, db_url)) as (client, launcher):
        store = client.app.state.store
        cid = client.post("/campaigns", json=spec).json()["id"]
        for _ in range(3):
            deadline = time.monotonic() + 60
            while not any(store.epochs(cid, t.number) for t in store.trials(cid, statuses=("running",))):
                assert time.monotonic() < deadline, "no trial got to the middle of its run"
                time.sleep(0.05)
            assert client.post(f"/campaigns/{cid}/cancel").status_code == 200
            launcher.join(timeout=60)
            body = client.get(f"/campaigns/{cid}").json()
            assert body["status"] == "cancelled" and body["trials_running"] == 0, body
            resumed = client.post(f"/campaigns/{cid}/resume")
            assert resumed.status_code == 200, resumed.text
        final = wait_for(client, cid, timeout=180)
        assert final["status"] == "completed", final
        trials = client.get(f"/campaigns/{cid}/trials").json()["items"]
        assert sorted(t["number"] for t in trials) == list(range(12))
        assert all(t["status"] == "completed" for t in trials)
        assert max(t["attempt"] for t in trials) >= 2
        assert all(len(store.epochs(cid, t["number"])) == 3 for t in trials)


def test_two_resumes_at_once_start_one_job(tmp_path):
    """Two resumes of a cancelled campaign, sent together and held so that both are inside the
    reopen transition at the same instant: one 200 with one job, one 409 (a read-then-write
    transition would give two 200s and two jobs)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from api.launcher import QueueLauncher

    class CountingLauncher(QueueLauncher):
        def __init__(self):
            self.submitted = []

        def submit(self, campaign_id):
            self.submitted.append(campaign_id)
            return f"job-{len(self.submitted)}"

    launcher = CountingLauncher()
    settings = api_settings(tmp_path)
    with TestClient(create_app(settings, launcher=lambda s, url: launcher)) as client:
        cid = client.post("/campaigns", json=sleep_spec()).json()["id"]
        assert client.post(f"/campaigns/{cid}/cancel").status_code == 200
        store = client.app.state.store
        transition, together, seen = store.transition_campaign, threading.Barrier(2), threading.local()

        def reopen_together(campaign_id, **kwargs):  # each request's first write waits for the other's
            if not getattr(seen, "first_write_done", False):
                seen.first_write_done = True
                together.wait(timeout=30)
            return transition(campaign_id, **kwargs)

        store.transition_campaign = reopen_together
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: client.post(f"/campaigns/{cid}/resume"), range(2)))
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        assert launcher.submitted == [cid, cid]  # the create, then exactly one resume
        assert client.get(f"/campaigns/{cid}").json()["job_id"] == "job-2"


def test_completed_campaign_cannot_be_cancelled(finished):
    client, store, cid, _ = finished
    assert client.post(f"/campaigns/{cid}/cancel").status_code == 409
    assert store.campaign(cid).status == "completed"


def test_multipart_spec_and_hyp_upload(tmp_path):
    spec = yaml.safe_dump(sleep_spec(name="uploaded", generations=1, population=1, hyp={"lr0": 0.02}))
    hyp = yaml.safe_dump({"lr0": 0.005, "momentum": 0.9, "mosaic": 0.5})
    with running_app(api_settings(tmp_path), launcher="queue") as (client, _):
        response = client.post("/campaigns", files={"spec": ("c.yaml", spec, "application/yaml"),
                                                    "hyp": ("hyp.yaml", hyp, "application/yaml")})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "queued" and body["job_id"] is None  # the queue launcher starts nothing
        # the uploaded file is the base; the spec's own hyp entries win
        assert body["spec"]["hyp"] == {"lr0": 0.02, "momentum": 0.9, "mosaic": 0.5}


def test_campaign_weights_may_be_a_yolov5_checkpoint(tmp_path, local_ray):
    """REST takes a YOLOv5 .pt as a campaign's weights: the coordinator converts it once for the
    workers; a hostile file is refused at submission (422) with the reason, having run nothing."""
    import os
    import shutil

    import torch

    from tests.paths import YOLOV5_FIXTURES

    settings = api_settings(tmp_path)
    data = settings.data_roots[0]
    shutil.copy(YOLOV5_FIXTURES / "yolov5n-coco128-best.pt", data / "yolov5n.pt")
    marker = tmp_path / "pwned"

    class RunsCommand:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"model": RunsCommand()}, data / "hostile.pt")
    with running_app(settings) as (client, _launcher):
        good = client.post("/campaigns", json=sleep_spec(name="tuned", weights="yolov5n.pt", generations=1))
        bad = client.post("/campaigns", json=sleep_spec(name="hostile", weights="hostile.pt", generations=1))
        assert good.status_code == 201 and bad.status_code == 422, (good.text, bad.text)
        assert wait_for(client, good.json()["id"])["status"] == "completed"
    assert "refusing to load global 'posix.system'" in bad.json()["detail"][0]["msg"]
    assert not marker.exists()
    (converted,) = (settings.project_dir).glob("tuned*/start-weights/*.pt")
    assert torch.load(converted, weights_only=True)["format"] == "evolver-yolo-1"


@pytest.mark.parametrize("searcher", ["yolov5-population", "blx"])
def test_new_searcher_campaign_completes_over_rest(searcher, tmp_path, local_ray):
    """POST a campaign with each new searcher on the dry-run trainer (the population GA's starting
    from an evolve_population.yaml in the data root, named as the client knows it); it completes
    and GET …/trials reads every trial back: inside the limits, parents from generation 1 on, and
    the population GA's trials 1..k the file's individuals on the augmentation genes, the base's
    values elsewhere."""
    from evolver.campaign import CampaignSpec
    from evolver.space import AUGMENTATION_GENES
    from tests.evolver.yolov5_population import evolve_population_file, read_individuals
    from yolo.hyp import Hyperparameters

    settings = api_settings(tmp_path)
    fields = {"searcher": searcher, "generations": 2, "population": 3, "dry_run_seconds": [0.05, 0.2],
              "confirm": False}
    individuals = []
    if searcher == "yolov5-population":
        population_file, _ = evolve_population_file(settings.data_roots[0])
        individuals = read_individuals(population_file)
        fields |= {"start_population": population_file.name, "population": len(individuals) + 1}
    total = fields["generations"] * fields["population"]
    with running_app(settings) as (client, _launcher):
        created = client.post("/campaigns", json=sleep_spec(**fields))
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        assert wait_for(client, cid, timeout=60 + total)["status"] == "completed"
        page = client.get(f"/campaigns/{cid}/trials", params={"sort": "number", "limit": total}).json()
    trials = page["items"]
    assert page["total"] == total and [t["number"] for t in trials] == list(range(total))
    assert all(t["status"] == "completed" and t["stage"] == "search" for t in trials)
    spec = CampaignSpec.model_validate(created.json()["spec"])
    assert spec.searcher == searcher
    limits = {gene.name: (gene.lower, gene.upper) for gene in spec.space().genes}
    for trial in trials:
        assert all(low <= trial["hyp"][name] <= high for name, (low, high) in limits.items()), trial
        if trial["generation"] >= 1:
            assert trial["parents"] and all(0 <= p < trial["number"] for p in trial["parents"]), trial
    base = Hyperparameters().to_dict()
    assert trials[0]["hyp"] == base
    for trial, individual in zip(trials[1:len(individuals) + 1], individuals, strict=True):
        expected = {name: min(max(individual.get(name, value), limits[name][0]), limits[name][1])
                    if name in AUGMENTATION_GENES else value for name, value in base.items()}
        assert trial["hyp"] == pytest.approx(expected)


def test_new_searcher_mistakes_are_422_naming_the_field(tmp_path):
    """The population GA with a population of 1, a start_population outside the data roots, one
    that is not a population yaml, one with the classic GA: 422 at the field, nothing stored, and
    the server's folders left out of the answer."""
    settings = api_settings(tmp_path)
    data = settings.data_roots[0]
    (tmp_path / "outside.yaml").write_text("gen1number0: {hsv_h: 0.01}\n")
    (data / "scalar.yaml").write_text("gen1number0: {hsv_h: 0.01}\ngen1number1: 0.5\n")
    (data / "population.yaml").write_text("gen1number0: {hsv_h: 0.01}\n")
    population_ga = {"searcher": "yolov5-population"}
    cases = [
        ("population", sleep_spec(**population_ga, population=1), "at least 2 trials per generation"),
        ("start_population", sleep_spec(**population_ga, start_population=str(tmp_path / "outside.yaml")),
         "outside the server's data roots"),
        ("start_population", sleep_spec(**population_ga, start_population="../outside.yaml"),
         "outside the server's data roots"),
        ("start_population", sleep_spec(**population_ga, start_population="nope.yaml"), "no such file"),
        ("start_population", sleep_spec(**population_ga, start_population="scalar.yaml"),
         "gen1number1: expected a mapping of hyperparameters"),
        ("start_population", sleep_spec(start_population="population.yaml"), "only searcher yolov5-population"),
    ]
    with running_app(settings, launcher="queue") as (client, _):
        for field, spec, words in cases:
            response = client.post("/campaigns", json=spec)
            assert response.status_code == 422, (field, response.text)
            (problem,) = response.json()["detail"]
            assert problem["loc"] == ["body", field] and words in problem["msg"], problem
            assert str(data) not in problem["msg"], problem
        assert client.get("/campaigns").json() == []
