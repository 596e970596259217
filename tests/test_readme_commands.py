"""The README's campaign commands, copied as they stand, in an empty folder, as a newcomer runs them.

The commands are read from the README's "Evolution campaigns" block, so a README edit that
changes one is tried as edited. The user writes `campaign.yaml` (here a dry run: `trainer: sleep`,
long enough to be cancelled mid-run) and has a YOLOv5 `evolve.csv` where the README's import line
expects it (here the one Evolver wrote for the first campaign). Only the cluster line, which needs
a running Ray cluster and PostgreSQL, is left out. The mistakes of issue 21 are played in
tests/evolver/test_cli_mistakes.py and tests/yolo/test_cli_mistakes.py, from empty folders too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from evolver.store import Store

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1",
       "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def readme_campaign_commands() -> list[str]:
    """The `evolver …` lines of the README's first bash block under "## Evolution campaigns",
    comments removed."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Evolution campaigns"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("evolver")]


def shell(command: str, folder: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=folder, env=ENV, capture_output=True, text=True, **kwargs)


def test_the_readme_campaign_commands_work_in_an_empty_folder(tmp_path):
    commands = readme_campaign_commands()
    expected = ["evolver run campaign.yaml", "evolver status", "evolver status 1", "evolver cancel 1",
                "evolver resume 1", "evolver best 1"]
    for command in expected:
        assert command in commands, f"the README no longer shows `{command}`: update this test with it"
    (imported,) = [c for c in commands if "import-csv" in c]
    csv_path = re.search(r"import-csv 1 (\S+)", imported).group(1)

    folder = tmp_path / "newcomer"
    folder.mkdir()
    (folder / "campaign.yaml").write_text(yaml.safe_dump(
        {"name": "first", "trainer": "sleep", "epochs": 3, "dry_run_seconds": [1.0, 1.5], "generations": 12,
         "population": 2, "cpu_workers": 2, "confirm": False}))

    def answered(result: subprocess.CompletedProcess, command: str) -> str:
        out = result.stdout + result.stderr
        assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{out}"
        assert "Traceback" not in out, f"`{command}`:\n{out}"
        return out

    run = subprocess.Popen(["bash", "-c", "evolver run campaign.yaml"], cwd=folder, env=ENV, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    store_file = folder / "runs" / "evolve" / "evolver.db"  # where the README says the default store is
    deadline = time.monotonic() + 180
    while not (store_file.exists() and Store.open(Store.sqlite_url(store_file)).trials(1, statuses=("running",))):
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "the first campaign never ran a trial"
        time.sleep(0.3)
    assert "first" in answered(shell("evolver status", folder, timeout=120), "evolver status")
    assert "running" in answered(shell("evolver status 1", folder, timeout=120), "evolver status 1")
    assert "cancelled" in answered(shell("evolver cancel 1", folder, timeout=120), "evolver cancel 1")
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 0 and "Traceback" not in out, out
    assert "completed" in answered(shell("evolver resume 1", folder, timeout=300), "evolver resume 1")
    assert "fitness" in answered(shell("evolver best 1", folder, timeout=120), "evolver best 1")

    # The import line, as it stands, in a second empty folder (its `create` makes campaign 1 there),
    # with a YOLOv5 evolve.csv where the line expects one: the 24 trials of the first campaign.
    second = tmp_path / "from-yolov5"
    (second / csv_path).parent.mkdir(parents=True)
    shutil.copy(folder / "runs" / "evolve" / "first" / "evolve.csv", second / csv_path)
    (second / "campaign.yaml").write_text(yaml.safe_dump(
        {"name": "seeded", "trainer": "sleep", "epochs": 1, "generations": 2, "population": 1, "confirm": False}))
    out = answered(shell(imported, second, timeout=300), imported)
    assert "campaign 1" in out and "24 parents imported" in out and "completed" in out, out
