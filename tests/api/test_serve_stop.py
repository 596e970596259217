"""`evolver serve` stopped while a campaign runs on its own Ray head (SIGTERM, as `kill` or
`docker stop` send; Ctrl-C takes the same path through uvicorn): it exits within seconds, says how
to continue, and leaves the campaign cancelled and unheld, so `evolver resume` runs it at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from evolver.store import Store

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_stopped_mid_campaign_leaves_it_resumable_at_once(tmp_path):
    spec = tmp_path / "dry.yaml"
    spec.write_text(yaml.safe_dump({"name": "dry", "trainer": "sleep", "epochs": 3, "dry_run_seconds": [2, 3],
                                    "generations": 6, "population": 2, "cpu_workers": 2, "confirm": False}))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1",
           "EVOLVER_DATA_ROOTS": f'["{tmp_path}"]'}
    project = tmp_path / "runs"
    serve = subprocess.Popen([sys.executable, "-m", "evolver", "serve", "--project", str(project), "--port",
                              str(_free_port()), "--submit", str(spec), "--ray-num-cpus", "2"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    db = Store.sqlite_url(project / "evolver.db")
    try:
        deadline = time.monotonic() + 240
        while True:
            assert serve.poll() is None, serve.communicate()[0]
            assert time.monotonic() < deadline, "the campaign never ran a trial"
            if (project / "evolver.db").exists():
                with Store.open(db) as store:
                    campaigns = store.campaigns()
                    if campaigns and store.trials(campaigns[0].id, statuses=("completed",)) and \
                            store.trials(campaigns[0].id, statuses=("running",)):
                        cid = campaigns[0].id
                        break
            time.sleep(0.5)
        serve.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, _ = serve.communicate(timeout=90)
        stopped_in = time.monotonic() - sent
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    assert stopped_in < 25, f"evolver serve took {stopped_in:.1f}s to stop:\n{out}"
    assert f"`evolver resume {cid}`" in out and "Traceback" not in out, out
    with Store.open(db) as store:
        record = store.campaign(cid)
        assert (record.status, record.holder) == ("cancelled", None), record
        assert not store.trials(cid, statuses=("running",))
    resumed = subprocess.run([sys.executable, "-m", "evolver", "resume", str(cid), "--db", db, "--quiet"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with Store.open(db) as store:
        trials = store.trials(cid)
        assert store.campaign(cid).status == "completed"
        assert [t.number for t in trials] == list(range(12)) and all(t.status == "completed" for t in trials)
