"""A newcomer's mistakes with the campaign commands (issue 21), typed into the real `evolver` command
in an empty folder: each is refused with exit status 2 in one line that names the file, field or
value and what would be accepted, never a traceback; and the refusals that used to start Ray first
(export-winner with nothing to export, a second coordinator, resuming a complete campaign) answer
before Ray is even imported.

"Before Ray" is checked structurally, not by the clock: every command runs under `python -X
importtime`, which lists each module the process imported, and `ray` must not be among them. A
process that never imported ray cannot have started it, whatever the machine's load; a wall-clock
bound would have to sit between the command's own start-up (several seconds when the CPUs are
shared) and Ray's, and flake either way.

The independent mistakes run four at a time, each in its own empty folder; one finished dry-run
campaign (trainer: sleep) serves the tests that need one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from evolver import lifecycle
from evolver.exchange import write_evolve_csv
from evolver.store import Store
from yolo.hyp import Hyperparameters

IMPORT_TIME = "import time:"
POPULATION_GA = "trainer: sleep\nsearcher: yolov5-population\n"
DRY_RUN = {"name": "dry", "trainer": "sleep", "generations": 2, "population": 1, "epochs": 1, "confirm": False,
           "exports": [], "dry_run_seconds": [0.1, 0.2]}


@dataclass(frozen=True)
class Answer:
    """What a user saw: exit status, stdout, stderr (without -X importtime's lines), and which
    modules the process imported."""

    code: int
    out: str
    err: str
    imported: frozenset[str]

    @property
    def started_ray(self) -> bool:  # could have: a process that never imported ray did not
        return "ray" in self.imported

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def evolver(folder: Path, *args: str, timeout: float = 180) -> Answer:
    """`python -m evolver ARGS` in `folder`, as a user runs it, with Python's import log on."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "evolver", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)
    imported, shown = set(), []
    for line in done.stderr.splitlines():
        if line.startswith(IMPORT_TIME):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            shown.append(line)
    return Answer(done.returncode, done.stdout, "\n".join(shown), frozenset(imported))


def assert_refused(answer: Answer, command: str, *words: str) -> str:
    """Exit 2, one line `evolver COMMAND: error: ...` holding every word, no traceback, no Ray."""
    assert "Traceback" not in answer.err + answer.out, answer.err
    assert answer.code == 2, answer
    lines = answer.error_lines()
    assert len(lines) == 1 and lines[0].startswith(f"evolver {command}: error: "), answer.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not answer.started_ray, lines[0]
    return lines[0]


# ------------------------------------------------------------------------ mistakes in empty folders
@dataclass(frozen=True)
class Mistake:
    args: tuple[str, ...]
    words: tuple[str, ...]  # what the one line must say
    files: dict[str, str] = field(default_factory=dict)  # written into the empty folder first


MISTAKES = {
    "missing campaign yaml": Mistake(("run", "nonexistent.yaml"), ("campaign yaml nonexistent.yaml", "no such file")),
    "yaml syntax error": Mistake(("run", "campaign.yaml"), ("campaign.yaml, line 1, column 7", "not valid YAML"),
                                 {"campaign.yaml": "name: [unclosed\n"}),
    "space in the name": Mistake(
        ("create", "campaign.yaml"),
        ("campaign.yaml: name:", "letters, digits, '.', '_' and '-', starting with a letter or digit", "'my campaign'"),
        {"campaign.yaml": "name: my campaign\ntrainer: sleep\n"}),
    "misspelt field": Mistake(("create", "campaign.yaml"), ("epoch: unknown field", "did you mean 'epochs'"),
                              {"campaign.yaml": "trainer: sleep\nepoch: 3\n"}),
    "misspelt nested field": Mistake(("create", "campaign.yaml"), ("confirm.topk: unknown field", "'top_k'"),
                                     {"campaign.yaml": "trainer: sleep\nconfirm: {topk: 2}\n"}),
    "freeze range as text": Mistake(("create", "campaign.yaml"), ("freeze:", "layer count N", "list of layer indices",
                                                                  "'0..9'"),
                                    {"campaign.yaml": "trainer: sleep\nfreeze: [0..9]\n"}),
    "freeze count past the model": Mistake(("create", "campaign.yaml"), ("freeze:", "from 0 to 25", "got 30"),
                                           {"campaign.yaml": "trainer: sleep\nfreeze: 30\n"}),
    "data yaml that does not exist": Mistake(("run", "campaign.yaml"),
                                             ("campaign.yaml: data: no such file", "nope.yaml"),
                                             {"campaign.yaml": "data: nope.yaml\n"}),
    "data yaml with a syntax error": Mistake(("create", "campaign.yaml"), ("campaign.yaml: data:", "data.yaml", "line"),
                                             {"campaign.yaml": "data: data.yaml\n", "data.yaml": "train: [x\n"}),
    "weights that are not a checkpoint": Mistake(("create", "campaign.yaml"), ("weights:", "not a PyTorch checkpoint"),
                                                 {"campaign.yaml": "weights: campaign.yaml\n"}),
    "empty campaign yaml": Mistake(("run", "campaign.yaml"), ("campaign.yaml is empty",), {"campaign.yaml": ""}),
    "bad database URL": Mistake(("status", "--db", "not-a-url"), ("cannot open the database not-a-url",
                                                                  "not a database URL", "sqlite:///")),
    "unreachable PostgreSQL": Mistake(("status", "--db", "postgresql+psycopg://evolver:s3cret@127.0.0.1:1/evolver"),
                                      ("cannot open the database postgresql+psycopg://evolver:***@127.0.0.1:1/evolver",
                                       "Connection refused")),
    "a file where the project folder goes": Mistake(("status", "--project", "taken"), ("cannot create its folder",
                                                                                        "a file is in the way"),
                                                    {"taken": "not a folder\n"}),
    "unknown campaign id": Mistake(("status", "42"), ("campaign 42 not found in sqlite:///", "`evolver status`")),
    "resume of an unknown campaign": Mistake(("resume", "7"), ("campaign 7 not found",)),
    "missing evolve.csv": Mistake(("import-csv", "1", "nope.csv"), ("nope.csv: no such file",)),
    "lease too short": Mistake(("run", "campaign.yaml", "--lease", "0"), ("--lease", "at least 2 seconds"),
                               {"campaign.yaml": "trainer: sleep\n"}),
    "population of one for the population GA": Mistake(
        ("create", "campaign.yaml"), ("campaign.yaml: population:", "at least 2 trials per generation", "got 1"),
        {"campaign.yaml": "trainer: sleep\nsearcher: yolov5-population\npopulation: 1\n"}),
    "start_population that does not exist": Mistake(
        ("run", "campaign.yaml"), ("campaign.yaml: start_population: no such file", "nope.yaml"),
        {"campaign.yaml": f"{POPULATION_GA}start_population: nope.yaml\n"}),
    "start_population that is not YAML": Mistake(
        ("create", "campaign.yaml"), ("campaign.yaml: start_population:", "population.yaml, line 1", "not valid YAML"),
        {"campaign.yaml": f"{POPULATION_GA}start_population: population.yaml\n",
         "population.yaml": "gen1number0: {hsv_h: [0.1\n"}),
    "start_population entry that is not a mapping": Mistake(
        ("run", "campaign.yaml"), ("campaign.yaml: start_population:", "gen1number1: expected a mapping of "
                                   "hyperparameters", "got 0.5"),
        {"campaign.yaml": f"{POPULATION_GA}start_population: population.yaml\n",
         "population.yaml": "gen1number0: {hsv_h: 0.01}\ngen1number1: 0.5\n"}),
    "start_population with an unknown hyperparameter": Mistake(
        ("create", "campaign.yaml"), ("campaign.yaml: start_population:", "gen1number0: unknown hyperparameter(s) "
                                      "lr00"),
        {"campaign.yaml": f"{POPULATION_GA}start_population: population.yaml\n",
         "population.yaml": "gen1number0: {hsv_h: 0.01, lr00: 0.02}\n"}),
    "start_population with the classic GA": Mistake(
        ("run", "campaign.yaml"), ("campaign.yaml: start_population:", "only searcher yolov5-population",
                                   "import an evolve.csv"),
        {"campaign.yaml": "trainer: sleep\nstart_population: population.yaml\n",
         "population.yaml": "gen1number0: {hsv_h: 0.01}\n"}),
}
ACCEPTED = {  # what a newcomer may type and must work (answers checked by their own tests)
    "status in an empty folder": Mistake(("status",), ()),
    "freeze as a layer count": Mistake(("create", "campaign.yaml"), (),
                                       {"campaign.yaml": "trainer: sleep\nfreeze: 10\n"}),
    "several bad fields": Mistake(("create", "campaign.yaml"), (),
                                  {"campaign.yaml": "trainer: slep\npopulation: 0\nimg_size: 100\n"}),
}


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict[str, tuple[Path, Answer]]:
    """Every case of MISTAKES and ACCEPTED, each in its own empty folder, four processes at a time."""
    def attempt(name: str, case: Mistake) -> tuple[Path, Answer]:
        folder = tmp_path_factory.mktemp("newcomer")
        for relative, text in case.files.items():
            (folder / relative).write_text(text)
        return folder, evolver(folder, *case.args)

    cases = {**MISTAKES, **ACCEPTED}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(attempt, name, case) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_is_refused_in_one_line_before_any_work(answers, name):
    folder, answer = answers[name]
    command = MISTAKES[name].args[0]
    assert_refused(answer, command, *MISTAKES[name].words)
    if command in ("run", "create") and name != "a file where the project folder goes":
        assert not (folder / "runs").exists(), "a refused campaign yaml must not open (create) the store"


def test_password_never_shown(answers):
    _, answer = answers["unreachable PostgreSQL"]
    assert "s3cret" not in answer.err + answer.out


def test_status_in_an_empty_folder_makes_the_default_store(answers):
    folder, answer = answers["status in an empty folder"]
    assert answer.code == 0 and "Traceback" not in answer.err, answer.err
    assert "no campaigns in sqlite:///" in answer.out and "evolver run campaign.yaml" in answer.out
    assert (folder / "runs" / "evolve" / "evolver.db").is_file()


def test_freeze_count_means_the_first_layers_as_on_the_command_line(answers):
    folder, answer = answers["freeze as a layer count"]
    assert answer.code == 0, answer.err
    with Store.open(Store.sqlite_url(folder / "runs" / "evolve" / "evolver.db")) as store:
        (campaign,) = store.campaigns()
    assert campaign.spec["freeze"] == list(range(10))  # YOLOv5's --freeze 10: layers 0-9


def test_several_bad_fields_are_one_line_each(answers):
    _, answer = answers["several bad fields"]
    assert answer.code == 2 and "Traceback" not in answer.err
    first, *fields = answer.error_lines()
    assert first == "evolver create: error: campaign.yaml: 3 fields are invalid:"
    assert sorted(line.split(":")[0].strip() for line in fields) == ["img_size", "population", "trainer"]
    assert any("'yolo' or 'sleep', got 'slep'" in line for line in fields)


# ------------------------------------------------------------------------ around a finished campaign
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A folder where `evolver run dry.yaml` completed campaign 1 (two sleeping trials)."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "dry.yaml").write_text(yaml.safe_dump(DRY_RUN))
    answer = evolver(folder, "run", "dry.yaml", "--quiet", timeout=300)
    assert answer.code == 0 and "campaign 1 completed" in answer.out, answer.err
    assert answer.started_ray  # the import log does see Ray when it runs: its absence elsewhere means something
    return folder


def _store(folder: Path) -> Store:
    return Store.open(Store.sqlite_url(folder / "runs" / "evolve" / "evolver.db"))


@pytest.mark.parametrize("args", [("resume", "1"), ("run", "--campaign", "1")])
def test_complete_campaign_has_nothing_to_run(finished, args):
    line = assert_refused(evolver(finished, *args), args[0], "campaign 1 (dry) is complete", "2/2 search trials",
                          "`evolver best 1`", "new campaign", "import-csv")
    assert "evolve.csv" in line
    with _store(finished) as store:
        assert store.campaign(1).status == "completed"  # not reopened by the refusal


def test_export_winner_without_weights_says_why(finished):
    assert_refused(evolver(finished, "export-winner", "1"), "export-winner",
                   "campaign 1 has no completed trial with kept weights", "trainer: sleep")


def test_create_names_the_id_and_reimport_says_rows_were_there(finished):
    created = evolver(finished, "create", "dry.yaml")
    assert created.code == 0, created.err
    assert created.out.startswith("campaign ") and "(dry) created" in created.out
    campaign_id = int(created.out.split()[1])  # the id is the second word, for scripts
    assert f"`evolver run --campaign {campaign_id}`" in created.out
    great = {"precision": 1.0, "recall": 1.0, "map50": 1.0, "map": 1.0,
             "val_box_loss": 0.01, "val_obj_loss": 0.01, "val_cls_loss": 0.01}
    write_evolve_csv(finished / "evolve.csv", [(great, Hyperparameters().to_dict()),
                                               (great, Hyperparameters(lr0=0.02).to_dict())])
    first = evolver(finished, "import-csv", str(campaign_id), "evolve.csv")
    assert first.code == 0 and "2 parents imported" in first.out and "already" not in first.out, first.err
    again = evolver(finished, "import-csv", str(campaign_id), "evolve.csv")
    assert again.code == 0, again.err
    assert "0 parents imported" in again.out and "2 of its 2 rows were already there" in again.out


def test_second_coordinator_is_refused_before_ray(finished):
    created = evolver(finished, "create", "dry.yaml")
    campaign_id = int(created.out.split()[1])
    lease = lifecycle.Lease(seconds=300, holder="first-coordinator")
    with _store(finished) as store:
        lifecycle.claim(store, campaign_id, lease)  # what a running coordinator does first
        try:
            assert_refused(evolver(finished, "run", "--campaign", str(campaign_id)), "run",
                           f"campaign {campaign_id} (dry) is already run by first-coordinator",
                           f"`evolver cancel {campaign_id}`")
            held = store.campaign(campaign_id)
            assert (held.status, held.holder) == ("running", "first-coordinator")
        finally:
            lifecycle.abandon(store, campaign_id, lease)
