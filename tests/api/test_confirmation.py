"""GET /campaigns/{id}/confirmation over the real app, on SQLite and PostgreSQL: campaigns are
written into the store directly (search trials, then the retrainings `confirmation.plan` asks
for), one per state: confirmed, confirming (during the search, and during the retrainings), not
confirmed (cancelled halfway) and off. The trial JSON carries each trial's stage and split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evolver.campaign import CampaignSpec
from evolver.confirmation import plan
from evolver.store import Placement, Store
from tests.api.helpers import api_settings, running_app

PLACE = Placement("cpu-0", "node", "127.0.0.1", None)
SEARCH_FITNESS = [0.30, 0.50, 0.40, 0.20]  # trial 0 trains the base
# Per retraining in plan order (seed-major: base, trial 1, trial 2 for each of the 2 seeds).
CONFIRMED = [0.31, 0.42, 0.45, 0.29, 0.40, 0.47]


def add(store: Store, cid: int, number: int, generation: int, hyp: dict, parents, seed: int,
        fitness: float | None, status: str = "completed", **stage) -> None:
    """A trial as the coordinator leaves it: pending, running, or finished with `status`."""
    store.add_trial(cid, number, generation, hyp, parents, seed, **stage)
    if status == "pending":
        return
    store.start_trial(cid, number, 1, PLACE)
    if status != "running":
        store.finish_trial(cid, number, 1, status, metrics={"metrics/mAP_0.5": 0.5}, fitness=fitness,
                           epochs_done=2)


def seed_campaign(store: Store, folder: Path, name: str, status: str, *, searched: int = 4,
                  retrainings: list[tuple[float | None, str]] = (), confirm: dict | bool | None = None) -> int:
    """A 2x2 campaign (confirming the best 2 with 2 seeds) whose first `searched` search trials
    finished and whose retrainings (fitness, status) follow the confirmation's own plan."""
    spec = CampaignSpec(name=name, trainer="sleep", epochs=2, generations=2, population=2,
                        confirm={"top_k": 2, "seeds": 2} if confirm is None else confirm)
    cid = store.create_campaign(name, spec.to_json_dict(), str(folder / name))
    base = spec.base_hyp()
    for n, fitness in enumerate(SEARCH_FITNESS[:searched]):
        hyp = base if n == 0 else {**base, "lr0": 0.01 + 0.01 * n}
        add(store, cid, n, n // 2, hyp, () if n == 0 else (0,), 100 + n, fitness)
    planned = plan(spec.confirm, spec.seed, store.trials(cid))
    for k, (fitness, trial_status) in enumerate(retrainings):
        add(store, cid, 4 + k, 2, planned[k].hyp, planned[k].parents, planned[k].seed, fitness, trial_status,
            stage="confirm", split="test")
    store.transition_campaign(cid, from_statuses=None, status=status)
    return cid


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(request, tmp_path_factory):
    """(client, ids by state) over a store holding one campaign per confirmation state."""
    root = tmp_path_factory.mktemp(f"confirm-{request.param}")
    db_url = None
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_server").new_database()
    settings = api_settings(root, db_url)
    with Store.open(settings.database_url()) as store:
        done = [(f, "completed") for f in CONFIRMED]
        ids = {
            "confirmed": seed_campaign(store, root, "confirmed", "completed", retrainings=done),
            "searching": seed_campaign(store, root, "searching", "running", searched=2),
            "retraining": seed_campaign(store, root, "retraining", "running", retrainings=[
                *done[:3], (None, "running"), (None, "pending")]),
            # Cancelled after the first seed; one retraining scored NaN (stored as missing).
            "cancelled": seed_campaign(store, root, "cancelled", "cancelled", retrainings=[
                (0.31, "completed"), (math.nan, "completed"), (0.45, "completed"), (None, "cancelled")]),
            "off": seed_campaign(store, root, "off", "completed", confirm=False),
        }
    with running_app(settings, launcher="queue") as (client, _launcher):
        yield client, ids


def confirmation(client, cid: int) -> dict:
    response = client.get(f"/campaigns/{cid}/confirmation")
    assert response.status_code == 200, response.text

    def refuse(constant: str):
        raise AssertionError(f"{constant} in the JSON")

    return json.loads(response.text, parse_constant=refuse)  # strict JSON: no NaN or Infinity


def test_confirmed_campaign_has_a_winner_with_its_figures(app):
    client, ids = app
    body = confirmation(client, ids["confirmed"])
    assert body["state"] == "confirmed" and body["campaign_id"] == ids["confirmed"]
    assert (body["split"], body["split_selected"], body["epochs"], body["seeds"]) == ("test", False, 2, 2)
    base, first, second = body["candidates"]
    assert [c["label"] for c in body["candidates"]] == ["base", "trial 1", "trial 2"]
    assert base["is_base"] and base["source_trial"] == 0 and base["search_fitness"] == pytest.approx(0.30)
    assert base["fitnesses"] == pytest.approx([0.31, 0.29]) and base["trials"] == [4, 7]
    assert base["mean"] == pytest.approx(0.30) and base["se"] == pytest.approx(0.01) and base["n"] == 2
    assert first["search_fitness"] == pytest.approx(0.50) and first["mean"] == pytest.approx(0.41)
    assert first["optimism"] == pytest.approx(0.09) and first["trials"] == [5, 8]
    assert second["mean"] == pytest.approx(0.46) and second["planned"] == 2
    assert second["hyp"]["lr0"] == pytest.approx(0.03)
    # The search's best (trial 1) is not the confirmed winner: trial 2 is.
    assert body["winner"] == "trial 2" and body["raw_best"] == "trial 1"
    assert body["raw_best_optimism"] == pytest.approx(0.09)
    assert body["base_mean"] == pytest.approx(0.30) and body["base_se"] == pytest.approx(0.01)
    assert body["difference_se"] == pytest.approx(0.16 / math.hypot(0.01, 0.01))
    assert body["spearman"] == pytest.approx(0.5)
    assert 0 < body["cost_share"] < 1 and body["search_seconds"] >= 0 and body["confirm_seconds"] >= 0
    assert body["summary"][0].startswith("confirmation: confirmed")
    assert any(line.startswith("winner: trial 2") for line in body["summary"])


def test_confirming_has_no_winner_yet(app):
    client, ids = app
    searching = confirmation(client, ids["searching"])
    assert searching["state"] == "confirming" and searching["candidates"] == []
    assert searching["winner"] is None and searching["base_mean"] is None and searching["spearman"] is None
    retraining = confirmation(client, ids["retraining"])
    assert retraining["state"] == "confirming" and retraining["winner"] is None
    base, first, second = retraining["candidates"]
    assert base["trials"] == [4, 7] and base["n"] == 1 and base["se"] is None  # one run: no SE
    assert first["trials"] == [5, 8] and second["trials"] == [6]  # 8 runs, 9 is not bred yet
    assert retraining["difference_se"] is None


def test_cancelled_campaign_is_not_confirmed_and_nan_is_null(app):
    client, ids = app
    body = confirmation(client, ids["cancelled"])
    assert body["state"] == "not confirmed" and body["winner"] is None
    base, first, second = body["candidates"]
    assert first["n"] == 0 and first["fitnesses"] == [] and first["mean"] is None and first["optimism"] is None
    assert base["mean"] == pytest.approx(0.31) and base["se"] is None
    assert any(line.startswith("not confirmed:") for line in body["summary"])


def test_confirmation_off(app):
    client, ids = app
    body = confirmation(client, ids["off"])
    assert body["state"] == "off" and body["candidates"] == [] and body["winner"] is None
    assert "off" in body["summary"][0]
    assert client.get(f"/campaigns/{ids['off']}").json()["trials_total"] == 4


def test_trials_carry_stage_and_split(app):
    client, ids = app
    cid = ids["confirmed"]
    items = client.get(f"/campaigns/{cid}/trials", params={"limit": 100}).json()["items"]
    assert [(t["stage"], t["split"]) for t in items] == [("search", "val")] * 4 + [("confirm", "test")] * 6
    detail = client.get(f"/campaigns/{cid}/trials/5").json()
    assert detail["stage"] == "confirm" and detail["split"] == "test" and detail["parents"] == [1]
    campaign = client.get(f"/campaigns/{cid}").json()
    assert campaign["trials_total"] == 4 + 3 * 2  # the search, then at most 3 candidates x 2 seeds
    assert campaign["best_fitness"] == pytest.approx(0.50)  # the search's raw best, never a retraining's
    assert campaign["links"]["confirmation"] == f"/campaigns/{cid}/confirmation"


def test_unknown_campaign_is_404(app):
    client, _ = app
    assert client.get("/campaigns/999/confirmation").status_code == 404
    assert client.get("/campaigns/0/confirmation").status_code == 422


def test_bad_confirm_values_are_a_422_naming_the_field_and_store_nothing(app):
    client, _ids = app
    before = client.get("/campaigns").json()
    spec = {"name": "bad", "trainer": "sleep", "epochs": 1, "generations": 1}
    for confirm, field in (({"top_k": 0}, "top_k"), ({"seeds": "two"}, "seeds"), ({"split": "holdout"}, "split"),
                           ({"epochs": 0}, "epochs"), ({"tops": 1}, "tops"), ("maybe", "confirm")):
        response = client.post("/campaigns", json={**spec, "confirm": confirm})
        assert response.status_code == 422, response.text
        locations = [".".join(map(str, d["loc"])) for d in response.json()["detail"]]
        assert any("confirm" in loc and loc.endswith(field) for loc in locations), (confirm, locations)
    response = client.post("/campaigns", json={**spec, "trial_seeds": "same"})
    assert response.status_code == 422 and "trial_seeds" in response.text
    assert client.get("/campaigns").json() == before
