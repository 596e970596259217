"""The demo campaign (what `make demo` submits), run as `evolver run` runs it, with its figures.

`examples/synthetic-campaign.yaml` fine-tunes the shipped `examples/yolov5n-shapes.pt` on the
shifted synthetic task. This runs it through `evolver run` itself (the real coordinator, a
private local Ray, SQLite in a temporary folder) and prints, from SQL: the first trial's
mAP@0.5:0.95 (the base hyperparameters), each trial's wall time from start to recorded result
(training and validation included), and per generation the best and mean fitness, the line the
dashboard draws. Targets: a trial <= 45 s on a 2-core CPU, first trial mAP@0.5:0.95 >= 0.3, the
best fitness rising over the generations.

    .venv/bin/python -m benchmarks.demo_campaign [--seed N] [--spec examples/synthetic-campaign.yaml]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import yaml

from evolver.cli import main as evolver_main
from evolver.store import Store

DEMO_SPEC = Path(__file__).resolve().parent.parent / "examples" / "synthetic-campaign.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=DEMO_SPEC, help="campaign yaml")
    parser.add_argument("--seed", type=int, help="campaign seed instead of the yaml's (another sequence of children)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evolver-demo-bench-") as tmp:
        spec_path = _with_seed(args.spec, args.seed, Path(tmp))
        start = time.perf_counter()
        status = evolver_main(["run", str(spec_path), "--project", tmp, "--quiet"])
        wall = time.perf_counter() - start
        logging.disable(logging.INFO)
        with Store.open(Store.sqlite_url(Path(tmp) / "evolver.db")) as store:
            campaign = store.campaigns()[-1]
            trials = store.trials(campaign.id)
            generations = store.generations(campaign.id)
    spec = campaign.spec
    print(f"\ndemo campaign {spec['name']} (seed {spec['seed']}): {spec['cfg']} from {Path(spec['weights']).name} "
          f"on {spec['data']}, {spec['epochs']} epochs at {spec['img_size']} px, batch {spec['batch_size']}, "
          f"{spec['generations']} generations x {spec['population']}; exit status {status}, {wall:.0f} s wall")
    print("trial  gen  status     seconds  mAP@0.5  mAP@0.5:0.95  fitness   parents")
    for t in trials:
        seconds = (t.ended_at - t.started_at).total_seconds() if t.started_at and t.ended_at else float("nan")
        m = t.metrics
        print(f"{t.number:5d}  {t.generation:3d}  {t.status:9s}  {seconds:7.1f}  {m.get('map50', float('nan')):7.3f}  "
              f"{m.get('map', float('nan')):12.3f}  {_num(t.fitness):8s}  {','.join(map(str, t.parents)) or '-'}")
    done = [t for t in trials if t.started_at and t.ended_at]
    if done:
        durations = sorted((t.ended_at - t.started_at).total_seconds() for t in done)
        print(f"trial wall time: median {durations[len(durations) // 2]:.1f} s, max {durations[-1]:.1f} s "
              f"(target <= 45 s)")
    first = min(trials, key=lambda t: t.number) if trials else None
    if first is not None and first.metrics:
        print(f"first trial (base hyperparameters): mAP@0.5:0.95 {first.metrics['map']:.3f} (target >= 0.3)")
    print("generation  best      mean")
    for g in generations:
        print(f"{g.index:10d}  {_num(g.best_fitness):8s}  {_num(g.mean_fitness)}")


def _with_seed(spec_path: Path, seed: int | None, folder: Path) -> Path:
    """The yaml itself, or a copy with another seed and its relative paths made absolute."""
    if seed is None:
        return spec_path
    from evolver.campaign import CampaignSpec

    spec = CampaignSpec.from_yaml(spec_path)  # resolves relative paths against the yaml's folder
    copy = folder / spec_path.name
    copy.write_text(yaml.safe_dump({**spec.to_json_dict(), "seed": seed}, sort_keys=False), encoding="utf-8")
    return copy


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
