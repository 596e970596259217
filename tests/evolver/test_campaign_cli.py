"""The campaign CLI as users and Ray jobs run it, in real processes: a coordinator killed mid-campaign
resumes without retraining anything; `ray start` + `ray job submit` on a loopback-only network
namespace puts trials on both (fake) GPUs; bad specs fail with the field named and nothing stored;
the population GA and BLX searchers run from an empty folder through a cancel to completed, and the
population GA trains a YOLOv5 evolve_population.yaml first."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from evolver import lifecycle
from evolver.cli import main
from evolver.store import Store

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def write_spec(folder: Path, **fields) -> Path:
    """A campaign yaml; without the confirmation stage unless `confirm` is given (these tests count
    the search's trials)."""
    fields.setdefault("confirm", False)
    path = folder / f"{fields.get('name', 'campaign')}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def evolver(*args: str, cwd: Path = REPO, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "evolver", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_bad_spec_names_the_field_and_stores_nothing(tmp_path, capsys):
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = write_spec(tmp_path, name="bad", population=0, hyp={"lr00": 0.1}, search_space={"lr0": {"lower": 1, "upper": 0}})
    assert main(["run", str(spec), "--db", db, "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "population" in err and "lr00" in err and "lr0" in err
    missing = write_spec(tmp_path, name="missing", data=str(tmp_path / "nope.yaml"))
    assert main(["run", str(missing), "--db", db, "--project", str(tmp_path)]) == 2
    assert "data: no such file" in capsys.readouterr().err
    store = Store.open(db)
    assert store.campaigns() == []
    assert main(["status", "42", "--db", db]) == 2
    assert "42" in capsys.readouterr().err


def test_killed_coordinator_resumes_without_retraining(tiny_synthetic, tmp_path):
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = write_spec(tmp_path, name="crash", data=str(tiny_synthetic), epochs=1, img_size=64, generations=5,
                      population=1, cpu_workers=1, exports=[])
    first = evolver("run", str(spec), "--db", db, "--project", str(tmp_path), "--quiet", "--lease", "4",
                    start_new_session=True)
    store = Store.open(db)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        campaigns = store.campaigns()
        if campaigns and len(store.trials(campaigns[0].id, statuses=("completed",))) >= 2 \
                and store.trials(campaigns[0].id, statuses=("running",)):
            break
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.2)
    else:
        pytest.fail("campaign never reached 2 completed trials")
    os.killpg(first.pid, signal.SIGKILL)  # the coordinator and its local Ray die at once
    first.wait()
    cid = store.campaigns()[0].id
    before = {t.number: t for t in store.trials(cid) if t.status == "completed"}
    interrupted = [t.number for t in store.trials(cid) if t.status == "running"]
    assert store.campaign(cid).status == "running" and interrupted

    # Its lease (renewed every second) outlives it by up to 4 s: meanwhile a resume is refused,
    # naming the holder; once it lapsed, the campaign is taken over.
    holder = store.campaign(cid).holder
    with pytest.raises(lifecycle.CampaignBusy, match=f"held by {holder}"):
        lifecycle.reopen(store, cid)
    while store.campaign(cid).lease_expires_at > datetime.now(UTC):
        time.sleep(0.2)
    second = evolver("resume", str(cid), "--db", db, "--quiet")
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    trials = store.trials(cid)
    assert len(trials) == 5 and all(t.status == "completed" for t in trials)
    for number, old in before.items():  # untouched: same attempt, same start, same result
        assert trials[number] == old
    for number in interrupted:
        assert trials[number].attempt == 2
    assert main(["best", str(cid), "--db", db]) == 0


def wait_until_a_trial_is_mid_run(store: Store, cid: int | None, process: subprocess.Popen,
                                  timeout: float = 120) -> int:
    """Wait until one of the campaign's trials is running with an epoch stored but not all of its
    epochs done (the campaign id is found on the way when None); returns the campaign id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        campaigns = store.campaigns()
        if campaigns:
            cid = campaigns[-1].id if cid is None else cid
            if any(store.epochs(cid, t.number) for t in store.trials(cid, statuses=("running",))):
                return cid
        time.sleep(0.1)
    pytest.fail("no trial got to the middle of its run")


def assert_completed_exactly(store: Store, cid: int, asked: int) -> None:
    """Completed, with each of the `asked` trials once, completed, its result from its last attempt."""
    assert store.campaign(cid).status == "completed", store.campaign(cid)
    trials = store.trials(cid)
    assert sorted(t.number for t in trials) == list(range(asked))
    assert all(t.status == "completed" and t.fitness is not None for t in trials)
    for trial in trials:  # the metrics of a cancelled attempt never mix with its retry's
        assert len(store.epochs(cid, trial.number)) == 3


MULTI_EPOCH_DRY_RUN = dict(trainer="sleep", epochs=3, dry_run_seconds=[2.0, 3.0], generations=16, population=2,
                           cpu_workers=2)


def test_cancelled_mid_run_three_times_then_completed_exactly(store_url, tmp_path):
    """`evolver run`, then `evolver cancel` while trials are mid-run and `evolver resume`, three
    rounds, on SQLite and PostgreSQL: the campaign completes with the trial count it asked for."""
    spec = write_spec(tmp_path, name="rounds", **MULTI_EPOCH_DRY_RUN)
    store = Store.open(store_url)
    process = evolver("run", str(spec), "--db", store_url, "--project", str(tmp_path), "--quiet")
    cid = None
    for _ in range(3):
        cid = wait_until_a_trial_is_mid_run(store, cid, process)
        assert main(["cancel", str(cid), "--db", store_url]) == 0
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0 and "cancelled" in out, out
        assert store.campaign(cid).holder is None
        assert store.trials(cid, statuses=("cancelled",))
        process = evolver("resume", str(cid), "--db", store_url, "--quiet")
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    assert_completed_exactly(store, cid, asked=32)
    assert max(t.attempt for t in store.trials(cid)) >= 2


def test_ctrl_c_stops_within_seconds_and_resumes_at_once(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C: one line saying how to go on,
    no traceback, the campaign let go of (cancelled, no holder), and an immediate resume works."""
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = write_spec(tmp_path, name="ctrlc", **MULTI_EPOCH_DRY_RUN)
    store = Store.open(db)
    process = evolver("run", str(spec), "--db", db, "--project", str(tmp_path), "--quiet", start_new_session=True)
    cid = wait_until_a_trial_is_mid_run(store, None, process)
    os.killpg(process.pid, signal.SIGINT)
    sent = time.monotonic()
    out, _ = process.communicate(timeout=60)
    stopped_in = time.monotonic() - sent
    assert process.returncode == 130, out
    assert "interrupted by SIGINT" in out and f"`evolver resume {cid}` continues it" in out, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert stopped_in < 20, f"took {stopped_in:.1f}s to stop"
    record = store.campaign(cid)
    assert (record.status, record.holder) == ("cancelled", None)
    assert not store.trials(cid, statuses=("running",))
    resumed = evolver("resume", str(cid), "--db", db, "--quiet")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "held by" not in out, out
    assert_completed_exactly(store, cid, asked=32)


def test_a_pipe_closed_early_ends_quietly(tmp_path):
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = write_spec(tmp_path, name="piped", trainer="sleep", epochs=1, generations=2, population=1)
    assert main(["run", str(spec), "--db", db, "--project", str(tmp_path), "--quiet"]) == 0
    for command in (f"best 1 --db {db}", f"status 1 --db {db}", "--help"):
        piped = subprocess.run(f"{sys.executable} -m evolver {command} | head -c 1", shell=True, cwd=REPO,
                               capture_output=True, text=True, timeout=120)
        assert piped.stdout and piped.stderr == "", (command, piped.stderr)


NETNS_REASON = "needs root and `ip netns` to keep Ray on a loopback-only network namespace"


def _can_use_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.mark.skipif(not _can_use_netns(), reason=NETNS_REASON)
def test_ray_job_submit_on_a_two_gpu_cluster(tiny_synthetic, tmp_path):
    ns = f"evolver-{uuid.uuid4().hex[:8]}"
    temp_dir = Path("/tmp") / f"rj{uuid.uuid4().hex[:6]}"
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = write_spec(tmp_path, name="job", data=str(tiny_synthetic), epochs=1, img_size=64, generations=2,
                      population=2)
    # Ray >= 2.5x: token auth (the token in ~/.ray/auth_token); the job CLI sends it only in token mode.
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}

    def in_ns(*cmd: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], env=env, capture_output=True, text=True,
                              timeout=timeout)

    subprocess.run(["ip", "netns", "add", ns], check=True)
    head = None
    try:
        in_ns("ip", "link", "set", "lo", "up")
        # --block keeps the head in this process group, so it is stopped by signalling the group:
        # `ray stop` would stop every Ray on the machine, not only this one.
        head = subprocess.Popen(
            ["ip", "netns", "exec", ns, str(VENV_BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2",
             "--num-gpus", "2", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
             "--dashboard-port", "8265", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        probe = ("import urllib.error, urllib.request\ntry:\n"
                 "    urllib.request.urlopen('http://127.0.0.1:8265/api/version', timeout=2)\n"
                 "except urllib.error.HTTPError:\n    pass  # it answers (401 without the token): it is up")
        deadline = time.monotonic() + 90
        while in_ns(sys.executable, "-c", probe).returncode != 0:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(1)
        job = in_ns(str(VENV_BIN / "ray"), "job", "submit", "--address", "http://127.0.0.1:8265",
                    "--working-dir", str(REPO), "--", sys.executable, "-m", "evolver", "run", str(spec),
                    "--db", db, "--project", str(tmp_path), "--quiet", timeout=400)
        output = job.stdout + job.stderr
        assert "SUCCEEDED" in output or "succeeded" in output, output[-3000:]
        store = Store.open(db)
        (campaign,) = store.campaigns()
        trials = store.trials(campaign.id)
        assert len(trials) == 4 and all(t.status == "completed" for t in trials)
        assert {t.gpu_id for t in trials} == {"0", "1"}
        assert {t.node_ip for t in trials} == {"127.0.0.1"}
    finally:
        if head is not None:
            _stop_group(head)
        subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_group(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_import_csv_seeds_parents_and_status_best_cancel_report(tmp_path, capsys):
    from evolver.exchange import write_evolve_csv
    from yolo.hyp import Hyperparameters

    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = write_spec(tmp_path, name="seeded", trainer="sleep", epochs=1, generations=4, population=1)
    assert main(["create", str(spec), "--db", db, "--project", str(tmp_path)]) == 0
    cid = int(capsys.readouterr().out.split()[1])  # "campaign ID (NAME) created, ..."
    great = {"precision": 1.0, "recall": 1.0, "map50": 1.0, "map": 1.0,
             "val_box_loss": 0.01, "val_obj_loss": 0.01, "val_cls_loss": 0.01}
    imported_hyp = Hyperparameters(lr0=0.0123, momentum=0.9).to_dict()
    write_evolve_csv(tmp_path / "evolve.csv", [(great, imported_hyp)])
    assert main(["import-csv", str(cid), str(tmp_path / "evolve.csv"), "--db", db]) == 0
    assert "1 parents imported" in capsys.readouterr().out

    runner = evolver("run", "--campaign", str(cid), "--db", db, "--quiet")
    out, _ = runner.communicate(timeout=240)
    assert runner.returncode == 0, out
    trials = Store.open(db).trials(cid)
    assert len(trials) == 4 and trials[0].parents == ()  # the first trial trains the base
    assert all(t.parents == (-1,) for t in trials[1:])  # the imported parent (fitness 1.0) wins every draw
    assert trials[1].hyp["lr0"] != imported_hyp["lr0"] or trials[1].hyp["momentum"] != imported_hyp["momentum"]

    assert main(["status", "--db", db]) == 0
    assert "seeded" in capsys.readouterr().out
    assert main(["status", str(cid), "--db", db]) == 0
    report = capsys.readouterr().out
    assert "4 completed" in report and "gen" in report
    assert main(["best", str(cid), "--db", db]) == 0
    assert "lr0" in capsys.readouterr().out
    assert main(["cancel", str(cid), "--db", db]) == 0
    assert "already completed" in capsys.readouterr().out


def test_best_and_status_give_the_confirmed_answer_or_say_not_confirmed(tmp_path, capsys):
    """`best` prints the confirmation's figures and names the confirmed winner as the answer; for a
    campaign cancelled before its retrainings finished it says the search's best is not confirmed.
    Campaigns are written into the store directly (search trials, then the planned retrainings)."""
    from evolver.campaign import CampaignSpec
    from evolver.confirmation import plan
    from evolver.store import Placement

    db = Store.sqlite_url(tmp_path / "evolver.db")
    store = Store.open(db)
    place = Placement("cpu-0", "node", "127.0.0.1", None)

    def add(cid, number, hyp, parents, seed, fitness, **stage):
        store.add_trial(cid, number, 1 if stage else 0, hyp, parents, seed, **stage)
        store.start_trial(cid, number, 1, place)
        store.finish_trial(cid, number, 1, "completed" if fitness is not None else "cancelled",
                           metrics={"metrics/mAP_0.5": 0.5}, fitness=fitness, epochs_done=1)

    def campaign(name, status, retrained):
        spec = CampaignSpec(name=name, trainer="sleep", epochs=1, generations=1, population=2,
                            confirm={"top_k": 1, "seeds": 2})
        cid = store.create_campaign(name, spec.to_json_dict(), str(tmp_path / name))
        base = spec.base_hyp()
        add(cid, 0, base, (), 10, 0.30)
        add(cid, 1, {**base, "lr0": 0.02}, (0,), 11, 0.50)  # the search's best single trial
        for k, (suggestion, fitness) in enumerate(zip(plan(spec.confirm, spec.seed, store.trials(cid)), retrained)):
            add(cid, 2 + k, suggestion.hyp, suggestion.parents, suggestion.seed, fitness, stage="confirm",
                split="test")
        store.transition_campaign(cid, from_statuses=None, status=status)
        return cid

    # Seed-major: base, trial 1, base, trial 1.
    confirmed = campaign("confirmed", "completed", [0.31, 0.42, 0.29, 0.40])
    cancelled = campaign("cancelled", "cancelled", [0.31, 0.42, None])

    assert main(["best", str(confirmed), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "confirmation: confirmed; 2 fresh seed(s) x 1 epochs on the test split" in out
    assert "winner: trial 1, confirmed fitness 0.41000 ± 0.01000 (n=2)" in out
    assert "base: confirmed fitness 0.30000 ± 0.01000 (n=2)" in out
    assert "answer: the confirmed winner, trial 1, confirmed fitness 0.41000 over 2 fresh seed(s)" in out
    assert "lr0: 0.02" in out and "not confirmed" not in out

    assert main(["best", str(cancelled), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "confirmation: not confirmed" in out
    assert "answer: not confirmed: the search's best single trial, trial 1 (generation 0), search fitness 0.50000" in out
    assert "winner:" not in out and "lr0: 0.02" in out

    assert main(["status", str(confirmed), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "2 search trials + up to 4 retrainings: 6 completed" in out and "winner: trial 1" in out
    assert main(["status", "--db", db]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[-1] == "confirmation"
    assert rows[1].split()[-1] == "confirmed" and rows[2].endswith("not confirmed")
    assert "6/6" in rows[1] and "5/6" in rows[2]  # the cancelled retraining counts as finished


# ------------------------------------------------------------ the population GA and BLX, as a user runs them
NEW_SEARCHERS = ("yolov5-population", "blx")


def default_store_url(folder: Path) -> str:
    """The database `evolver` makes in a folder when no --db is given."""
    return Store.sqlite_url(folder / "runs" / "evolve" / "evolver.db")


def created_campaign(folder: Path, process: subprocess.Popen) -> tuple[Store, int]:
    """The store and id of the campaign a `run` started in `folder` created, read once the run has
    said so (nothing is opened before: the folder starts empty, as a user's does)."""
    for line in process.stdout:
        if line.startswith("campaign "):  # "campaign ID (NAME): N search trials, run folder ..."
            return Store.open(default_store_url(folder)), int(line.split()[1])
    pytest.fail(f"the run never said it created a campaign (exit {process.wait()})")


def assert_limits_kept_and_only(free: set[str], trials, spec) -> set[str]:
    """Every stored hyperparameter inside the campaign's limits, and only the `free` genes ever off
    the base; returns the genes some trial moved."""
    from evolver.campaign import CampaignSpec

    campaign = CampaignSpec.model_validate(spec)
    base = campaign.base_hyp()
    moved = set()
    for trial in trials:
        for gene in campaign.space().genes:
            assert gene.lower <= trial.hyp[gene.name] <= gene.upper, (trial.number, gene, trial.hyp[gene.name])
        moved |= {name for name, value in trial.hyp.items() if value != base[name]}
    assert moved and moved <= free, sorted(moved - free)
    return moved


def test_new_searchers_genes_are_what_their_users_expect():
    """What the campaign tests below take as each new searcher's free genes: YOLOv5 master's
    augmentation genes for the population GA; for BLX, every gene the default space lets move."""
    from evolver.campaign import CampaignSpec
    from evolver.space import AUGMENTATION_GENES

    def free(spec: CampaignSpec) -> set[str]:
        return {gene.name for gene in spec.space().genes if gene.free}

    assert free(CampaignSpec(searcher="yolov5-population")) == set(AUGMENTATION_GENES)
    assert "lr0" not in AUGMENTATION_GENES and "lr0" in free(CampaignSpec(searcher="blx"))


@pytest.mark.parametrize("searcher", NEW_SEARCHERS)
def test_new_searcher_runs_from_an_empty_folder_through_a_cancel_to_completed(searcher, tmp_path, capsys):
    """`evolver run spec.yaml` in a folder holding only the spec (default database, real local Ray,
    dry-run trainer); `evolver cancel` while a trial is mid-run; `evolver resume`: completed with
    each trial once, nothing re-bred differently on resume, every stored hyperparameter inside its
    limits, only the searcher's genes off the base (the population GA's: the augmentation genes),
    parents recorded from generation 1 on; `evolver status N` and `evolver best N` read it."""
    from evolver.campaign import CampaignSpec
    from evolver.space import AUGMENTATION_GENES

    folder = tmp_path / "empty"
    folder.mkdir()
    spec = write_spec(folder, name="searched", searcher=searcher, trainer="sleep", epochs=3,
                      dry_run_seconds=[2.0, 3.0], generations=3, population=3, cpu_workers=2, exports=[])
    process = evolver("run", spec.name, "--quiet", cwd=folder)
    store, cid = created_campaign(folder, process)
    wait_until_a_trial_is_mid_run(store, cid, process)
    db = default_store_url(folder)
    assert main(["cancel", str(cid), "--db", db]) == 0
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "cancelled" in out, out
    assert store.trials(cid, statuses=("cancelled",))
    bred = {t.number: (t.hyp, t.parents, t.seed) for t in store.trials(cid)}
    resumed = evolver("resume", str(cid), "--quiet", cwd=folder)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out

    assert_completed_exactly(store, cid, asked=9)
    trials = store.trials(cid)
    for number, before in bred.items():  # rebuilt from SQL: the same children, not new draws
        assert (trials[number].hyp, trials[number].parents, trials[number].seed) == before
    spec_row = store.campaign(cid).spec
    default = {gene.name for gene in CampaignSpec(searcher="blx").space().genes if gene.free}
    free = set(AUGMENTATION_GENES) if searcher == "yolov5-population" else default
    moved = assert_limits_kept_and_only(free, trials, spec_row)
    if searcher == "yolov5-population":  # generation 0's uniform draws move every evolved gene
        assert moved == set(AUGMENTATION_GENES)
    assert [t.generation for t in trials] == [n // 3 for n in range(9)]
    for trial in trials[3:]:
        assert trial.parents and all(0 <= parent < trial.number for parent in trial.parents), trial

    capsys.readouterr()
    assert main(["status", str(cid), "--db", db]) == 0
    report = capsys.readouterr().out
    assert "searched: completed; 9 search trials: 9 completed" in report, report
    assert [line.split()[0] for line in report.splitlines() if line.strip()[:1].isdigit()] == ["0", "1", "2"]
    assert main(["best", str(cid), "--db", db]) == 0
    answer = capsys.readouterr().out
    best = max(trials, key=lambda t: t.fitness)
    assert f"the search's best single trial, trial {best.number} (generation {best.generation})" in answer
    printed = {}
    for line in answer.splitlines():
        name, _, value = line.partition(": ")
        if name in best.hyp:
            printed[name] = float(value)
    assert printed == pytest.approx(best.hyp)


def test_population_ga_trains_the_start_population_first_and_a_widened_space_moves_lr0(tmp_path):
    """`start_population: evolve_population.yaml` (YOLOv5 master's own file when its fixture is in
    the repository, else one in its format) with `search_space: {lr0: {gain: 1}}`: trials 1..k of
    generation 0 are the file's individuals in order, with the file's values of the evolved genes
    (the augmentation genes and lr0) and the base's of every other gene; the rest of generation 0
    draws lr0 too; no gene outside the widened space ever moves."""
    from evolver.campaign import CampaignSpec
    from evolver.space import AUGMENTATION_GENES
    from tests.evolver.yolov5_population import evolve_population_file, read_individuals
    from yolo.hyp import Hyperparameters

    folder = tmp_path / "empty"
    folder.mkdir()
    population_file, written_by_yolov5 = evolve_population_file(folder)
    individuals = read_individuals(population_file)
    k = len(individuals)
    spec = write_spec(folder, name="seeded", searcher="yolov5-population", trainer="sleep", epochs=1,
                      dry_run_seconds=[0.05, 0.1], generations=2, population=k + 2, cpu_workers=2, exports=[],
                      start_population=population_file.name, search_space={"lr0": {"gain": 1}})
    process = evolver("run", spec.name, "--quiet", cwd=folder)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and "campaign 1 completed" in out, out

    with Store.open(default_store_url(folder)) as store:
        (campaign,) = store.campaigns()
        trials = store.trials(campaign.id)
    assert len(trials) == 2 * (k + 2) and all(t.status == "completed" for t in trials)
    evolved = set(AUGMENTATION_GENES) | {"lr0"}
    base = Hyperparameters().to_dict()
    assert trials[0].hyp == base and trials[0].parents == ()
    limits = {gene.name: (gene.lower, gene.upper) for gene in CampaignSpec.model_validate(campaign.spec).space().genes}
    for trial, individual in zip(trials[1:k + 1], individuals, strict=True):
        assert trial.generation == 0 and trial.parents == ()
        expected = {name: min(max(individual.get(name, value), limits[name][0]), limits[name][1])
                    if name in evolved else value for name, value in base.items()}
        assert trial.hyp == pytest.approx(expected), trial.number
    if not written_by_yolov5:  # the written file moves every gene: the base's values above are not the file's
        assert all(individual[name] != base[name] for individual in individuals for name in base)
    assert_limits_kept_and_only(evolved, trials, campaign.spec)
    assert any(t.hyp["lr0"] != base["lr0"] for t in trials[k + 1:])  # drawn and bred, not only read
