"""Coordinator scale: many fake GPUs, trivial trials, real Ray and real SQLite.

A local Ray with `--gpus` fake GPUs gets one worker per GPU; every trial is a SleepTrialTrainer
sleep of 0.2–0.8 s (it trains nothing), so what is measured is the coordinator: breeding, SQL,
files, dispatch. Prints
  - worker utilisation = summed trial time measured on the workers / (workers × wall), target >= 95 %;
  - coordinator + SQL cost per trial, target <= 10 ms (issue 12): the coordinator thread's CPU time / trials;
    beside it the loop's wall time outside waits (it includes time descheduled while 16 worker
    processes share 2 cores) and the whole process's CPU time (it adds Ray's driver threads).

    .venv/bin/python -m benchmarks.coordinator_scale [--gpus 16] [--trials 1024]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from benchmarks.coordinator_stats import RecordedStats
from evolver.campaign import CampaignSpec
from evolver.cluster import connect, disconnect
from evolver.coordinator import Coordinator, CoordinatorSettings
from evolver.store import Store
from workers import SleepTrialTrainer, WorkerPool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=16)
    parser.add_argument("--trials", type=int, default=1024)
    parser.add_argument("--population", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    generations = -(-args.trials // args.population)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Store.sqlite_url(Path(tmp) / "evolver.db"))
        spec = CampaignSpec(name="scale", trainer="sleep", epochs=1, generations=generations,
                            population=args.population, confirm=False)  # the search's trials only
        campaign_id = store.create_campaign(spec.name, spec.to_json_dict(), str(Path(tmp) / "scale"))
        connect(num_cpus=2, num_gpus=args.gpus)
        pool = WorkerPool(SleepTrialTrainer(min_seconds=0.2, max_seconds=0.8))
        try:
            stats = RecordedStats()
            coordinator = Coordinator(store, campaign_id, pool, CoordinatorSettings(progress=False), stats)
            # Let every worker come up first: actor start-up is Ray's cost, not the coordinator's.
            coordinator._sync_workers()
            while len(coordinator._idle_workers()) < args.gpus:
                time.sleep(0.1)
            cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
            outcome = coordinator.run()
            cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
            wall = time.perf_counter() - wall0
        finally:
            pool.shutdown()
            disconnect()
        trials = store.trials(campaign_id)
        busy = sum(stats.busy)  # as the workers measured their own trials
        workers = len({t.worker for t in trials})
        print(f"{len(trials)} trials ({outcome.completed} completed) on {workers} workers "
              f"({args.gpus} fake GPUs) in {wall:.1f} s")
        print(f"worker utilisation     {busy / (workers * wall):7.1%}   (target >= 95 %)")
        own = (wall - stats.waiting) / len(trials)
        print(f"coordinator CPU/trial  {thread / len(trials) * 1000:7.2f} ms (target <= 10 ms: the loop thread's CPU "
              "time: breeding, SQL, files, Ray calls)")
        print(f"loop wall/trial        {own * 1000:7.2f} ms (the same in wall time, incl. waiting for the cores "
              "the 16 workers share)")
        print(f"process CPU/trial      {cpu / len(trials) * 1000:7.2f} ms (upper bound incl. Ray's driver threads)")
        print(f"generations closed     {len(store.generations(campaign_id))}")


if __name__ == "__main__":
    main()
