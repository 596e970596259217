"""Starting a campaign's coordinator somewhere else than in the request: the launcher.

`Launcher` is the interface the routes use: submit a stored campaign, make sure a cancelled
campaign's run ends, close. `RayJobLauncher` is the real one: it submits
`python -m evolver run --campaign ID --db URL --quiet` through Ray's Jobs API (the same entry point
users run with `ray job submit`), to the configured cluster or to one local head that it starts on
127.0.0.1 at first use and stops on close. `ThreadLauncher` runs the same coordinator in a thread
of this process on an already initialised local Ray: a single-process mode for tests and demos.

A cancel is a row in SQL first (the coordinator reads it and stops its trials within seconds); the
launcher only stops the job if it has not ended by itself after a grace period.

A coordinator records how its campaign ended, unless it never gets to: its job failed before it
started, it crashed, someone ran `ray job stop`, its node went away. `RayJobLauncher` therefore
watches the jobs it submitted, and a job that ends while SQL still says queued / running marks its
campaign failed with the job's own message (`evolver resume` or POST .../resume runs it again).
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

from evolver import lifecycle
from evolver.lifecycle import LifecycleError
from evolver.store import Store

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
JOB_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keeps a local job's Ray on loopback
ENDED_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


class LaunchError(RuntimeError):
    """The campaign could not be started (no Ray, Jobs API unreachable, …)."""


class Launcher(Protocol):
    def submit(self, campaign_id: int) -> str | None:
        """Start the coordinator of a stored campaign; returns the id of the job that runs it
        (None when nothing was started)."""

    def cancelled(self, campaign_id: int, job_id: str | None) -> None:
        """The campaign was just set to "cancelled" in SQL: make sure its job ends."""

    def close(self) -> None:
        """Release what the launcher started (local Ray head, threads)."""


def coordinator_command(campaign_id: int, db_url: str) -> str:
    """The shell command a Ray job runs for a campaign (quoted: the URL may hold anything)."""
    return (f"{shlex.quote(sys.executable)} -m evolver run --campaign {int(campaign_id)} "
            f"--db {shlex.quote(db_url)} --quiet")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


# --------------------------------------------------------------------------------- local Ray head
class LocalRayHead:
    """One `ray start --head --block` on loopback, in its own session, with a private auth token.

    `--block` keeps the starting process alive as the owner of the head's processes: SIGTERM makes
    it shut them all down, and whatever is left in its process group is killed after that. We never
    run `ray stop`, which would also stop every other Ray on the machine.
    """

    def __init__(self, num_cpus: int | None = None, start_timeout: float = 90.0) -> None:
        self.num_cpus = num_cpus or os.cpu_count() or 1
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(32)
        self.dashboard_url: str | None = None
        self._process: subprocess.Popen | None = None
        self._temp_dir: Path | None = None

    def start(self) -> str:
        """Start the head and wait for its Jobs API; returns the dashboard URL."""
        ray_cli = Path(sys.executable).with_name("ray")
        if not ray_cli.exists():
            raise LaunchError(f"the `ray` command is not installed beside {sys.executable}")
        self._temp_dir = Path(tempfile.mkdtemp(prefix="evray", dir="/tmp"))  # AF_UNIX paths <= 107 bytes
        dashboard_port = _free_port()
        command = [
            str(ray_cli), "start", "--head", "--block", "--num-cpus", str(self.num_cpus),
            "--node-ip-address", LOOPBACK, "--dashboard-host", LOOPBACK, "--dashboard-port", str(dashboard_port),
            "--port", str(_free_port()), "--ray-client-server-port", str(_free_port()),
            "--dashboard-agent-listen-port", str(_free_port()), "--temp-dir", str(self._temp_dir),
            "--disable-usage-stats",
        ]
        # Token auth: whoever reaches the Jobs API can run code, so even on loopback only holders of
        # this token may (the job's driver inherits it from the head's processes).
        env = {**os.environ, **JOB_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        with open(self._temp_dir / "head.log", "wb") as head_log:
            self._process = subprocess.Popen(command, env=env, stdout=head_log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.dashboard_url = f"http://{LOOPBACK}:{dashboard_port}"
        try:
            self._wait_for_jobs_api()
        except BaseException:
            self.stop()
            raise
        log.info("local Ray head on %s (%d CPUs)", self.dashboard_url, self.num_cpus)
        return self.dashboard_url

    def client(self):
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard_url, headers={"Authorization": f"Bearer {self.token}"})

    def _wait_for_jobs_api(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LaunchError(f"`ray start --head` exited with {self._process.returncode}; see "
                                  f"{self._temp_dir / 'head.log'}")
            try:
                self.client().list_jobs()
                return
            except Exception as err:  # connection refused / 5xx while the dashboard starts
                last_error = err
                time.sleep(0.5)
        raise LaunchError(f"Ray's Jobs API did not come up in {self.start_timeout:.0f}s: {last_error}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    log.warning("Ray head did not stop within 30s; killing it")
            try:
                os.killpg(process.pid, signal.SIGKILL)  # stragglers of its session
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


# --------------------------------------------------------------------------------- Ray Jobs
def _no_agent_yet(err: Exception) -> bool:
    """Ray's answer while no job agent has registered with the head yet ("please try again later")."""
    return "No available agent" in str(err)


class RayJobLauncher:
    """Submits each campaign as a Ray job, to `address` or to a local head started at first use."""

    def __init__(self, db_url: str, *, address: str | None = None, num_cpus: int | None = None,
                 cancel_grace_seconds: float = 10.0, watch_seconds: float = 5.0,
                 agent_wait_seconds: float = 60.0) -> None:
        self.db_url = db_url
        self.agent_wait_seconds = agent_wait_seconds
        self.address = address
        self.num_cpus = num_cpus
        self.cancel_grace_seconds = cancel_grace_seconds
        self.watch_seconds = watch_seconds
        self._lock = threading.Lock()
        self._client = None
        self._head: LocalRayHead | None = None
        self._pending_stops: dict[str, threading.Timer] = {}
        self._watched: dict[str, int] = {}  # job id -> campaign id, until the job ends
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False

    def _jobs(self):
        with self._lock:
            if self._closed:
                raise LaunchError("the launcher is closed")
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self):
        from ray.job_submission import JobSubmissionClient

        if self.address:
            try:
                return JobSubmissionClient(self.address)
            except Exception as err:
                raise LaunchError(f"cannot reach Ray's Jobs API at {self.address}: {err}") from err
        head = LocalRayHead(self.num_cpus)
        head.start()
        self._head = head
        return head.client()

    def submit(self, campaign_id: int) -> str:
        jobs = self._jobs()
        deadline = time.monotonic() + self.agent_wait_seconds
        while True:
            try:
                job_id = jobs.submit_job(entrypoint=coordinator_command(campaign_id, self.db_url),
                                         runtime_env={"env_vars": dict(JOB_ENV)},
                                         metadata={"evolver_campaign": str(campaign_id)})
                break
            except Exception as err:
                if _no_agent_yet(err) and time.monotonic() < deadline:
                    time.sleep(0.5)  # a fresh head's Jobs API answers before its job agent registers
                    continue
                raise LaunchError(f"submitting campaign {campaign_id} to Ray failed: {err}") from err
        self._watch(job_id, campaign_id)
        return job_id

    def job_status(self, job_id: str) -> str:
        return str(self._jobs().get_job_status(job_id))

    def stop(self, job_id: str) -> None:
        """Stop a job now, as `ray job stop` would (the watcher then records what that did)."""
        self._jobs().stop_job(job_id)

    # ------------------------------------------------------------------------- watching jobs
    def _watch(self, job_id: str, campaign_id: int) -> None:
        with self._lock:
            if self._closed:
                return
            self._watched[job_id] = campaign_id
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch_jobs, name="ray-job-watcher", daemon=True)
                self._watcher.start()

    def _watch_jobs(self) -> None:
        while not self._closing.wait(self.watch_seconds):
            with self._lock:
                watched, client = dict(self._watched), self._client
            for job_id, campaign_id in watched.items():
                try:
                    info = client.get_job_info(job_id)
                except Exception as err:  # the Jobs API is briefly unreachable: ask again next round
                    log.debug("job watcher: %s: %s", job_id, err)
                    continue
                if str(info.status) in ENDED_JOB_STATES and self._job_ended(campaign_id, job_id, str(info.status),
                                                                             info.message):
                    with self._lock:
                        self._watched.pop(job_id, None)

    def _job_ended(self, campaign_id: int, job_id: str, state: str, message: str | None) -> bool:
        """The job is over; if its campaign still names it and nobody holds it, nobody runs it:
        failed. Returns whether that is settled. A coordinator that died with the job (a lost node,
        SIGKILL) holds the campaign until its lease lapses, so such a job is looked at again next
        round; one that lives elsewhere (`evolver run --campaign N`) renews its lease and ends the
        campaign itself."""
        reason = f"Ray job {job_id} ended {state} before the coordinator recorded an end"
        try:
            with Store.open(self.db_url) as store:
                if lifecycle.job_ended(store, campaign_id, job_id, f"{reason}: {message}" if message else reason):
                    log.warning("campaign %d: %s", campaign_id, reason)
                    return True
                campaign = store.campaign(campaign_id)
                return campaign.job_id != job_id or campaign.status in lifecycle.ENDED  # else: still held
        except Exception as err:  # noqa: BLE001 -- the watcher must outlive a database hiccup
            log.warning("campaign %d: could not record the end of job %s: %s", campaign_id, job_id, err)
            return False

    def cancelled(self, campaign_id: int, job_id: str | None) -> None:
        if not job_id:
            return
        timer = threading.Timer(self.cancel_grace_seconds, self._stop_job, args=(campaign_id, job_id))
        timer.daemon = True
        with self._lock:
            if self._closed or job_id in self._pending_stops:
                return
            self._pending_stops[job_id] = timer
        timer.start()

    def _stop_job(self, campaign_id: int, job_id: str) -> None:
        """After the grace period: stop the job if it still runs. SQL is not touched: the cancel is
        already there, a coordinator cannot claim a cancelled campaign, and the campaign may have
        been resumed meanwhile (the watcher records the stopped job's end only if it still names it)."""
        with self._lock:
            self._pending_stops.pop(job_id, None)
            client = self._client
        if client is None:
            return
        try:
            if str(client.get_job_status(job_id)) not in ENDED_JOB_STATES:
                log.info("campaign %d: stopping Ray job %s", campaign_id, job_id)
                client.stop_job(job_id)
        except Exception as err:
            log.warning("campaign %d: stopping Ray job %s failed: %s", campaign_id, job_id, err)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending = dict(self._pending_stops)
            self._pending_stops.clear()
            watcher, self._watcher = self._watcher, None
        self._closing.set()
        if watcher is not None:
            watcher.join(timeout=30)
        for job_id, timer in pending.items():  # cancels asked for must still end their jobs
            timer.cancel()
            self._stop_job(*timer.args)
        if self._head is not None:
            self._stop_jobs_on_our_head()
            self._head.stop()
            self._head = None
        self._client = None

    def _stop_jobs_on_our_head(self) -> None:
        """The local head goes away with the server, and the coordinators running on it with it:
        stop their jobs first (SIGTERM, as `ray job stop`), so each records its trials cancelled
        and lets go of its campaign (`evolver resume` / POST …/resume continue it at once) instead
        of dying with a live lease. Jobs on a cluster given by address are left running."""
        with self._lock:
            watched, client = dict(self._watched), self._client
        if client is None or not watched:
            return
        running = []
        for job_id, campaign_id in watched.items():
            try:
                if str(client.get_job_status(job_id)) not in ENDED_JOB_STATES:
                    log.warning("campaign %d: stopping Ray job %s with the server; `evolver resume %d` (or POST "
                                "/campaigns/%d/resume once it is back) continues it", campaign_id, job_id, campaign_id,
                                campaign_id)
                    client.stop_job(job_id)
                    running.append(job_id)
            except Exception as err:  # noqa: BLE001 -- the head goes away next anyway
                log.warning("campaign %d: stopping Ray job %s failed: %s", campaign_id, job_id, err)
        deadline = time.monotonic() + self.cancel_grace_seconds
        while running and time.monotonic() < deadline:
            time.sleep(0.2)
            running = [job for job in running if not self._job_has_ended(client, job)]

    @staticmethod
    def _job_has_ended(client, job_id: str) -> bool:
        try:
            return str(client.get_job_status(job_id)) in ENDED_JOB_STATES
        except Exception:  # noqa: BLE001 -- unreachable: nothing more to wait for
            return True


# --------------------------------------------------------------------------------- queue only
class QueueLauncher:
    """Starts nothing: campaigns stay queued until someone runs them by hand
    (`ray job submit -- python -m evolver run --campaign ID --db URL`, or `evolver run --campaign ID`)."""

    def submit(self, campaign_id: int) -> None:
        return None

    def cancelled(self, campaign_id: int, job_id: str | None) -> None:
        """A queued campaign has no job to stop."""

    def close(self) -> None:
        """Nothing to release."""


# --------------------------------------------------------------------------------- in-process
class ThreadLauncher:
    """Runs each campaign's coordinator in a thread of this process, on the Ray this process is
    connected to (`evolver.cluster.connect()` is called first: a local Ray on loopback if none)."""

    def __init__(self, db_url: str, *, poll_seconds: float = 0.2) -> None:
        self.db_url = db_url
        self.poll_seconds = poll_seconds
        self._threads: dict[str, threading.Thread] = {}
        self._runs = 0
        self._lock = threading.Lock()

    def submit(self, campaign_id: int) -> str:
        from evolver.cluster import connect

        connect()
        with self._lock:
            for name, thread in self._threads.items():
                if name.startswith(f"thread-{campaign_id}-") and thread.is_alive():
                    thread.join(timeout=30)  # a cancelled run of the same campaign is still ending
            self._runs += 1
            job_id = f"thread-{campaign_id}-{self._runs}"
            thread = threading.Thread(target=self._run, args=(campaign_id, job_id), name=job_id, daemon=True)
            self._threads[job_id] = thread
        thread.start()
        return job_id

    def _run(self, campaign_id: int, job_id: str) -> None:
        from evolver.coordinator import CoordinatorSettings, run_campaign

        with Store.open(self.db_url) as store:
            try:
                run_campaign(store, campaign_id, CoordinatorSettings(
                    poll_seconds=self.poll_seconds, control_seconds=self.poll_seconds, progress=False))
            except LifecycleError as err:  # cancelled before its thread got going, or run by another
                log.info("campaign %d not run by %s: %s", campaign_id, job_id, err)
            except Exception as err:  # what a failed Ray job would show: the campaign failed, with why
                log.exception("campaign %d failed", campaign_id)
                lifecycle.job_ended(store, campaign_id, job_id, f"{type(err).__name__}: {err}")

    def cancelled(self, campaign_id: int, job_id: str | None) -> None:
        """Nothing to stop: the coordinator reads the cancel from SQL and ends its thread."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for every run to end (tests)."""
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def close(self) -> None:
        self.join(timeout=60)
