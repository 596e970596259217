"""Latency of the REST reads the dashboard polls, under 50 concurrent clients, while a campaign runs.

Starts, all on 127.0.0.1: the app under uvicorn (its own process, access log off), and a real
campaign (dry-run `sleep` trainer, run by `python -m evolver run --campaign ID` on its own
local Ray) that keeps finishing trials during the load. Then N clients, each with its own
httpx.AsyncClient, poll GET /campaigns/{id}, /campaigns/{id}/trials?limit=50,
/campaigns/{id}/generations and one trial's detail, one round every `--interval` seconds
(default 2 s, the dashboard's own poll period; 0 = as fast as they can), for `--seconds`. Prints request count, p50 / p99 latency overall
and per endpoint, and errors. Target (issue 4): p99 < 100 ms, zero errors.

    .venv/bin/python benchmarks/api_load.py [--clients 50] [--seconds 30] [--interval 2]

Everything it starts is stopped at the end (the campaign is cancelled first, so its Ray
shuts down cleanly).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from evolver import lifecycle
from evolver.campaign import CampaignSpec
from evolver.store import Store

REPO = Path(__file__).resolve().parents[1]
# ~0.5 s per trial on two workers: far more trials than a run of the benchmark can finish.
CAMPAIGN = {"name": "load", "trainer": "sleep", "epochs": 3, "generations": 2000, "population": 2, "cpu_workers": 2,
            "seed": 0, "confirm": False}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)

    def error(self, endpoint: str, what: str) -> None:
        self.errors[endpoint] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{endpoint}: {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _stop(process: subprocess.Popen, name: str, exit_wait: float = 0.0, grace: float = 20.0) -> None:
    """Give it `exit_wait` s to end by itself, then Ctrl-C (the coordinator then shuts its Ray
    down), and kill only if that does not work either."""
    try:
        process.wait(timeout=exit_wait)
        return
    except subprocess.TimeoutExpired:
        pass
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"{name} ignored SIGINT for {grace:.0f} s: killing it", file=sys.stderr)
        process.kill()
        process.wait()


def _wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


async def _client(base: str, campaign_id: int, trial_numbers: list[int], interval: float, until: float,
                  tally: Tally, rng: random.Random) -> None:
    paths = {
        "campaign": f"/campaigns/{campaign_id}",
        "trials": f"/campaigns/{campaign_id}/trials?limit=50",
        "generations": f"/campaigns/{campaign_id}/generations",
    }
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        await asyncio.sleep(rng.uniform(0, interval))  # spread the clients' rounds out
        while time.monotonic() < until:
            started = time.monotonic()
            round_paths = {**paths, "trial": f"/campaigns/{campaign_id}/trials/{rng.choice(trial_numbers)}"}
            for endpoint, path in round_paths.items():
                t0 = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.HTTPError as err:
                    tally.error(endpoint, repr(err))
                    continue
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    tally.error(endpoint, f"HTTP {response.status_code}")
                else:
                    tally.latencies[endpoint].append(elapsed)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def _load(base: str, campaign_id: int, trial_numbers: list[int], clients: int, seconds: float,
                interval: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(*(_client(base, campaign_id, trial_numbers, interval, until, tally, random.Random(i))
                           for i in range(clients)))
    return tally


def _report(tally: Tally, seconds: float, before: int, after: int) -> None:
    everything = [v for values in tally.latencies.values() for v in values]
    total = len(everything) + sum(tally.errors.values())
    print(f"\nrequests: {total} in {seconds:.0f} s ({total / seconds:.0f}/s), errors: {sum(tally.errors.values())}")
    print(f"{'endpoint':<12} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    for endpoint in ("campaign", "trials", "generations", "trial"):
        values = tally.latencies.get(endpoint, [])
        print(f"{endpoint:<12} {len(values):>7} {_percentile(values, 0.5) * 1e3:>8.1f} "
              f"{_percentile(values, 0.99) * 1e3:>8.1f} {max(values, default=float('nan')) * 1e3:>8.1f} "
              f"{tally.errors.get(endpoint, 0):>7}")
    p99 = _percentile(everything, 0.99) * 1e3
    print(f"{'all':<12} {len(everything):>7} {_percentile(everything, 0.5) * 1e3:>8.1f} {p99:>8.1f} "
          f"{max(everything, default=float('nan')) * 1e3:>8.1f} {sum(tally.errors.values()):>7}")
    print(f"campaign kept running: {before} -> {after} finished trials during the load")
    verdict = "met" if p99 < 100 and not tally.errors else "NOT met"
    print(f"target p99 < 100 ms with zero errors: {verdict}")
    for line in tally.first_errors:
        print("  first errors:", line)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where unavailable. CPU per
    request does not depend on what else the machine runs, unlike latency."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _finished(store: Store, campaign_id: int) -> int:
    return len(store.trials(campaign_id, statuses=("completed", "failed", "pruned")))


def _server_up(server: subprocess.Popen, base: str) -> bool:
    if server.poll() is not None:
        raise RuntimeError(f"the server exited with {server.returncode}")
    try:
        return httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between the start of one client's polling rounds (the dashboard: 2); "
                             "0 = closed loop, as fast as possible")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="evolver-load-"))
    db_url = Store.sqlite_url(folder / "evolver.db")
    store = Store.open(db_url)
    spec = CampaignSpec(**CAMPAIGN)
    campaign_id = store.create_campaign(spec.name, spec.to_json_dict(), str(folder / spec.name))
    base = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "EVOLVER_DB_URL": db_url, "EVOLVER_PROJECT_DIR": str(folder),
           "EVOLVER_DATA_ROOTS": f'["{folder}"]', "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("EVOLVER_API_TOKEN", None)
    python = sys.executable
    log_path = folder / "coordinator.log"
    with open(log_path, "w") as coordinator_log:
        coordinator = subprocess.Popen(
            [python, "-m", "evolver", "run", "--campaign", str(campaign_id), "--db", db_url, "--quiet"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=coordinator_log)
        server = subprocess.Popen(
            [python, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", base.rsplit(":", 1)[1], "--no-access-log", "--log-level", "warning"], cwd=REPO, env=env)
        try:
            _wait_until(lambda: _server_up(server, base), 60, "the server answering /healthz")
            _wait_until(lambda: _finished(store, campaign_id) >= 4, 120, "the campaign finishing its first trials")
            trial_numbers = [t.number for t in store.trials(campaign_id)]
            before = _finished(store, campaign_id)
            print(f"campaign {campaign_id} running ({before} trials finished); {args.clients} clients for "
                  f"{args.seconds:.0f} s, a round of 4 GETs every {args.interval} s each")
            started, cpu_before = time.monotonic(), _cpu_seconds(server.pid)
            tally = asyncio.run(_load(base, campaign_id, trial_numbers, args.clients, args.seconds, args.interval))
            elapsed, cpu_after = time.monotonic() - started, _cpu_seconds(server.pid)
            _report(tally, elapsed, before, _finished(store, campaign_id))
            served = sum(len(v) for v in tally.latencies.values())
            if cpu_before is not None and cpu_after is not None and served:
                cpu = cpu_after - cpu_before
                print(f"server CPU: {cpu:.1f} s over {elapsed:.0f} s ({cpu / elapsed:.0%} of one core), "
                      f"{cpu / served * 1e3:.1f} ms per request; machine load average {os.getloadavg()[0]:.1f} "
                      f"on {os.cpu_count()} cores")
            return 0 if not tally.errors else 1
        finally:
            lifecycle.cancel(store, campaign_id)  # the coordinator stops its trials and its Ray
            _stop(coordinator, "the coordinator", exit_wait=30)
            _stop(server, "the server", grace=10)
            store.close()
            print(f"coordinator log: {log_path}")


if __name__ == "__main__":
    sys.exit(main())
