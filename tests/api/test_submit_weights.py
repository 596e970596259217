"""A campaign's start weights are loaded at submission as the coordinator will load them: a file
that claims more than it holds (a stride-0 tensor of 10^13 elements in 700 bytes, a record that
inflates 1000 times), or that is not a checkpoint, is a 422 on `weights` naming the reason, with
nothing stored and little memory spent; a YOLOv5 checkpoint is accepted."""

from __future__ import annotations

import shutil

import pytest

from evolver.store import Store
from tests.api.helpers import api_settings, running_app, sleep_spec
from tests.paths import YOLOV5_FIXTURES
from tests.yolo.crafted_checkpoints import CraftedTensor, PeakMemory, write_tensor_file, write_zip_bomb

MEMORY_RISE_MB = 200


@pytest.fixture
def app(tmp_path):
    """(client, settings, data root) of an app whose campaigns stay queued (nothing trains here)."""
    settings = api_settings(tmp_path)
    with running_app(settings, launcher="queue") as (client, _):
        yield client, settings, settings.data_roots[0]


def test_weights_over_the_limits_are_a_422_naming_the_reason(app):
    client, settings, data = app
    write_tensor_file(data / "stride0.pt", CraftedTensor(size=(10**13,), stride=(0,), storage_numel=1))
    write_zip_bomb(data / "bomb.pt", unpacked=2**29)
    (data / "notes.pt").write_text("not a checkpoint")
    refusals = {
        "stride0.pt": "stride0.pt: tensor model.weight (storage '0'): zero stride on a dimension longer than 1",
        "bomb.pt": "bomb.pt: record 'archive/data/0' unpacks to 536870912 bytes from",
        "notes.pt": "notes.pt cannot be read as a checkpoint",
    }
    for name, reason in refusals.items():
        with PeakMemory() as peak:
            response = client.post("/campaigns", json=sleep_spec(name="tuned", weights=name))
        print(f"\n  POST with {name}: peak RSS +{peak.rise_mb:.1f} MB")
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body", "weights"] and reason in problem["msg"], problem
        assert str(data.resolve()) not in problem["msg"]  # the server's folders stay out of the answer
        assert peak.rise_mb < MEMORY_RISE_MB, (name, peak.rise_mb)
    with Store.open(settings.database_url()) as store:
        assert store.campaigns() == []


def test_a_yolov5_checkpoint_is_accepted_as_weights(app):
    client, _, data = app
    shutil.copy(YOLOV5_FIXTURES / "yolov5n-coco128-best.pt", data / "yolov5n.pt")
    response = client.post("/campaigns", json=sleep_spec(name="tuned", weights="yolov5n.pt"))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["weights"] == str((data / "yolov5n.pt").resolve())
