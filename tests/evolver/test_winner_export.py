"""The winner of a real (tiny) campaign exported on a local Ray: ONNX recorded with its size and
sha256, parity passed, loadable by onnxruntime; an engine asked on a GPU-less cluster is skipped and
reported, not failed; the CLI subcommand and `POST /campaigns/{id}/export` do the same."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from evolver.campaign import CampaignSpec
from evolver.coordinator import Coordinator, CoordinatorSettings
from evolver.store import Store
from evolver.winner_export import NoWinnerError, export_winner, run_winner_export
from workers import WorkerPool, build_trainer
from yolo.data import load_data_config

ray = pytest.importorskip("ray")
ort = pytest.importorskip("onnxruntime")

TOKEN = "export-test-token"


@pytest.fixture(scope="module")
def finished_campaign(local_ray, tiny_synthetic, tmp_path_factory) -> tuple[Path, int]:
    """(database file, campaign id) of a completed 2-trial campaign that really trained."""
    root = tmp_path_factory.mktemp("winner")
    db = root / "evolver.db"
    with Store.open(Store.sqlite_url(db)) as store:
        spec = CampaignSpec(name="win", data=str(tiny_synthetic), epochs=1, img_size=64, batch_size=16,
                            generations=2, population=1, cpu_workers=1, confirm=False)
        cid = store.create_campaign(spec.name, spec.to_json_dict(), str(root / "win"))
        pool = WorkerPool(build_trainer(spec.trainer), cpu_workers=1)
        try:
            outcome = Coordinator(store, cid, pool, CoordinatorSettings(poll_seconds=0.2, progress=False)).run()
        finally:
            pool.shutdown()
        assert outcome.status == "completed", outcome
    return db, cid


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_winner_exported_to_onnx_and_recorded(finished_campaign):
    db, cid = finished_campaign
    with Store.open(Store.sqlite_url(db)) as store:
        best = max((t for t in store.trials(cid) if t.status == "completed"), key=lambda t: (t.fitness, -t.number))
        records = export_winner(store, cid)  # the campaign's default exports: ("onnx",)
        assert [r.kind for r in records] == ["onnx", "export-report"]
        onnx = records[0]
        assert onnx.name == f"trial-{best.number:05d}-best.onnx" and onnx.trial_number == best.number
        assert Path(onnx.path).parent == Path(store.campaign(cid).run_dir) / "export"
        assert onnx.size == Path(onnx.path).stat().st_size and onnx.sha256 == _sha256(onnx.path)
        assert {a.name for a in store.artefacts(cid)} >= {onnx.name, "export-report.json"}
        report = json.loads(Path(records[1].path).read_text())
    assert report["trial"] == best.number and report["skipped"] == {}
    assert report["parity"]["passed"] is True and report["parity"]["images"] > 0
    assert report["parity"]["max_scaled_diff"] <= 1e-4
    assert not list(Path(onnx.path).parent.glob(".partial-*"))  # staging folder cleaned up
    session = ort.InferenceSession(onnx.path, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"images": np.zeros((1, 3, 64, 64), np.float32)})
    assert output.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 5 + load_data_config(report_data(db, cid)).nc)


def report_data(db: Path, cid: int) -> str:
    with Store.open(Store.sqlite_url(db)) as store:
        return store.campaign(cid).spec["data"]


def test_engine_without_gpu_is_skipped_not_failed(finished_campaign):
    db, cid = finished_campaign
    with Store.open(Store.sqlite_url(db)) as store:
        done = run_winner_export(store, cid, ["engine", "wts"])
    kinds = [a.kind for a in done.artefacts]
    assert kinds == ["onnx", "wts", "export-report"]  # the ONNX an engine needs is still made
    assert "no GPU" in done.skipped["engine"] and done.parity and done.parity.startswith("parity PASS")
    report = json.loads(Path(done.artefacts[-1].path).read_text())
    assert report["asked"] == ["engine", "wts"] and "engine" in report["skipped"]
    assert Path(done.artefacts[1].path).read_text().splitlines()[0].strip().isdigit()  # .wts count line


def test_nothing_to_export(local_ray, tmp_path):
    with Store.open(Store.sqlite_url(tmp_path / "e.db")) as store:
        cid = store.create_campaign("empty", CampaignSpec(name="empty").to_json_dict(), str(tmp_path / "empty"))
        with pytest.raises(NoWinnerError, match="no completed trial"):
            export_winner(store, cid)


def test_cli_export_winner(finished_campaign, capsys):
    from evolver.cli import main

    db, cid = finished_campaign
    assert main(["export-winner", str(cid), "--formats", "wts", "--db", Store.sqlite_url(db)]) == 0
    out = capsys.readouterr().out
    assert "winner trial" in out and ".wts" in out
    assert main(["export-winner", "999", "--db", Store.sqlite_url(db)]) == 2  # unknown campaign


def test_api_export_endpoint(finished_campaign, tmp_path):
    from tests.api.helpers import api_settings, running_app

    db, cid = finished_campaign
    settings = api_settings(tmp_path, db_url=Store.sqlite_url(db), api_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running_app(settings, launcher="queue") as (client, _):
        assert client.post(f"/campaigns/{cid}/export").status_code == 401
        response = client.post(f"/campaigns/{cid}/export", params={"formats": ["onnx"]}, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["parity"].startswith("parity PASS") and body["skipped"] == {}
        onnx = next(a for a in body["artefacts"] if a["kind"] == "onnx")
        assert client.get(f"/campaigns/{cid}").status_code == 401  # with a token set, reads need it too
        listed = client.get(f"/campaigns/{cid}", headers=auth).json()["artefacts"]
        assert onnx in listed  # the dashboard's download list reads the same rows
        download = client.get(onnx["url"], headers=auth)
        assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == onnx["sha256"]
        assert client.post(f"/campaigns/{cid}/export", params={"formats": ["pt"]}, headers=auth).status_code == 422
        with Store.open(Store.sqlite_url(db)) as store:
            queued = store.create_campaign("later", CampaignSpec(name="later").to_json_dict(), str(tmp_path / "l"))
        assert client.post(f"/campaigns/{queued}/export", headers=auth).status_code == 409
