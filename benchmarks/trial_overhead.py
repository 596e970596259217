"""Per-trial overhead of real trials: yolov5n on the default synthetic dataset, 2 epochs each.

Overhead = seconds from dispatch to recorded result minus the seconds inside yolo training and
validation: breeding, SQL, the Ray round trip, model build, anchors, data set-up, files. Target
<= 0.5 s per trial (the reference implementation: ~2 s per trial plus 5.5 s per process). The
first trial of a worker also pays for imports and decoding the dataset into the worker's cache;
it is printed apart.

    .venv/bin/python -m benchmarks.trial_overhead [--trials 4] [--img 128]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

from benchmarks.coordinator_stats import RecordedStats
from evolver.campaign import CampaignSpec
from evolver.cluster import connect, disconnect
from evolver.coordinator import Coordinator, CoordinatorSettings
from evolver.store import Store
from workers import WorkerPool, YoloTrialTrainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--img", type=int, default=128, help="image size (training time does not count)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Store.sqlite_url(Path(tmp) / "evolver.db"))
        spec = CampaignSpec(name="overhead", data="synthetic", epochs=2, img_size=args.img,
                            generations=args.trials, population=1, cpu_workers=1, confirm=False)
        campaign_id = store.create_campaign(spec.name, spec.to_json_dict(), str(Path(tmp) / "overhead"))
        connect(num_cpus=2)
        pool = WorkerPool(YoloTrialTrainer(), cpu_workers=1)
        try:
            stats = RecordedStats()
            coordinator = Coordinator(store, campaign_id, pool, CoordinatorSettings(progress=False), stats)
            outcome = coordinator.run()
        finally:
            pool.shutdown()
            disconnect()
    first, rest = stats.overheads[0], stats.overheads[1:]
    print(f"{outcome.completed} trials of yolov5n, 2 epochs at {args.img} px on the synthetic dataset")
    print(f"first trial overhead (imports, dataset decode): {first:6.2f} s")
    if rest:
        print(f"later trials overhead: median {statistics.median(rest):.2f} s, max {max(rest):.2f} s "
              f"(target <= 0.5 s; reference ~2 s + 5.5 s per process)")


if __name__ == "__main__":
    main()
