"""End to end through Ray's Jobs API: the app starts its own Ray head on 127.0.0.1, a small real
campaign (yolov5n, 1 epoch at 64 px on the tiny synthetic dataset, 2 generations of 1) is submitted
over HTTP, runs as a Ray job (`python -m evolver run --campaign ID --db URL`), and its
hyp_evolved.yaml download equals the best trial's hyperparameters in SQL. A second campaign's job
stopped from outside (`ray job stop`: SIGTERM to its driver) leaves that campaign cancelled, saying
so and how to continue, instead of running forever. Shutting the app down stops the head: no Ray process of ours is left."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from api.app import create_app
from evolver.store import Store
from tests.api.helpers import api_settings, sleep_spec, wait_for

from fastapi.testclient import TestClient


def _our_ray_processes(temp_prefix: str = "/tmp/evray") -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if temp_prefix in line and "ps -eo" not in line]


@pytest.mark.slow
def test_campaign_runs_as_a_ray_job_and_hyp_evolved_matches_sql(tmp_path, tiny_synthetic):
    settings = api_settings(tmp_path, ray_num_cpus=2, cancel_grace_seconds=1.0, job_watch_seconds=0.5)
    settings = settings.model_copy(update={"data_roots": [tiny_synthetic.parent]})
    spec = {"name": "e2e", "data": str(tiny_synthetic), "epochs": 1, "img_size": 64, "batch_size": 16,
            "generations": 2, "population": 1, "keep_top_k": 1, "confirm": False}  # the search's 2 trials only
    with TestClient(create_app(settings)) as client:
        created = client.post("/campaigns", json=spec)
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert campaign["job_id"].startswith("raysubmit_")
        assert _our_ray_processes(), "the local Ray head should be running"
        final = wait_for(client, campaign["id"], timeout=150)
        assert final["status"] == "completed", final
        assert final["trials_finished"] == 2
        downloaded = client.get(f"/campaigns/{campaign['id']}/hyp_evolved.yaml")
        assert downloaded.status_code == 200
        with Store.open(settings.database_url()) as store:
            completed = store.trials(campaign["id"], statuses=("completed",))
            best = max(completed, key=lambda t: (t.fitness, -t.number))
            assert yaml.safe_load(downloaded.text) == pytest.approx(best.hyp)
            assert {t.node_ip for t in completed} == {"127.0.0.1"}
        [weights] = final["artefacts"]
        assert weights["trial_number"] == best.number
        blob = client.get(weights["url"])
        assert blob.status_code == 200 and len(blob.content) == weights["size"]

        stopped = client.post("/campaigns", json=sleep_spec(name="stopped", generations=500, population=1))
        assert stopped.status_code == 201, stopped.text
        stopped = stopped.json()
        deadline = time.monotonic() + 90
        while client.get(f"/campaigns/{stopped['id']}").json()["trials_finished"] < 1:
            assert time.monotonic() < deadline, "no trial of the second campaign finished"
            time.sleep(0.2)
        client.app.state.launcher.stop(stopped["job_id"])  # what `ray job stop` does: SIGTERM to the driver
        ended = wait_for(client, stopped["id"], timeout=60)
        assert ended["status"] == "cancelled", ended
        assert "interrupted by SIGTERM" in ended["error"] and "resume" in ended["error"], ended
        assert ended["trials_running"] == 0
        assert 0 < ended["trials_finished"] < 500
    leftovers = _our_ray_processes()
    assert not leftovers, leftovers
