"""A campaign on real photos from YOLOv5's release weights, then its confirmation: what a user gets.

`examples/vehicles-campaign.yaml` fine-tunes yolov5n from `../shared/weights/yolov5n.pt` (YOLOv5's
COCO release checkpoint) on `../shared/datasets/vehicles-openimages` (real photos, 5 classes,
train / val / test = 439 / 125 / 63). The search scores its trials on val; the confirmation stage
retrains the best candidates and the base with fresh seeds and scores them on the test split,
which no search trial saw. Each campaign runs through `evolver run` itself (the real coordinator,
a private local Ray, SQLite in a temporary folder); its trials are saved to a JSON ledger so the
figures can be printed again without training (`report`).

Printed per campaign: the search (trials, worker-seconds, the raw best trial's val fitness), the
confirmation table (search fitness, test fitness per seed, mean ± SE, optimism), base vs confirmed
winner on the test split in standard errors, the raw best's optimism, the rank agreement
(Spearman) and the confirmation's share of the worker-seconds.

    python -m benchmarks.real_finetune run --trial-seeds per-trial          # ~1 h on a 2-core CPU
    python -m benchmarks.real_finetune run --trial-seeds shared
    python -m benchmarks.real_finetune run --spec examples/synthetic-campaign.yaml --trials 40 \\
        --confirm-seeds 2 --name demo-40          # the default stage's cost beside a 40-trial search
    python -m benchmarks.real_finetune report                                 # again, from the ledgers
    python -m benchmarks.real_finetune ledger runs/real_finetune/FOLDER --name N  # save a run's ledger
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from datetime import datetime
from pathlib import Path

import yaml

from evolver.campaign import CampaignSpec, ConfirmSpec
from evolver.confirmation import ConfirmationReport, build_report
from evolver.store import Store, TrialRecord

ROOT = Path(__file__).resolve().parent.parent
VEHICLES_SPEC = ROOT / "examples" / "vehicles-campaign.yaml"
RESULTS = Path(__file__).resolve().parent / "results" / "real_finetune"


def run(args: argparse.Namespace) -> None:
    from evolver.cli import main as evolver_main

    spec = CampaignSpec.from_yaml(args.spec)
    changes = {"trial_seeds": args.trial_seeds}
    if args.trials:
        changes.update(generations=args.trials, population=1)
    if args.confirm_seeds:
        changes["confirm"] = {**spec.confirm.model_dump(), "seeds": args.confirm_seeds}
    if args.seed is not None:
        changes["seed"] = args.seed
    spec = CampaignSpec.model_validate({**spec.to_json_dict(), **changes})
    name = args.name or f"{spec.name}-{args.trial_seeds}-seed{spec.seed}"
    # A fresh project folder that outlives this process: the SQLite file is the campaign, so a
    # crash after an hour of trials still leaves it to resume (`evolver resume --project ...`)
    # or to save again (`ledger`).
    project = Path(args.project or ROOT / "runs" / "real_finetune" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    project.mkdir(parents=True)
    spec_path = project / "campaign.yaml"
    spec_path.write_text(yaml.safe_dump(spec.to_json_dict(), sort_keys=False), encoding="utf-8")
    started = time.perf_counter()
    try:
        evolver_main(["run", str(spec_path), "--project", str(project), "--quiet"])
    finally:
        save_ledger(project, name, time.perf_counter() - started)


def save_ledger(project: Path, name: str, wall: float | None = None) -> None:
    """Write the campaign of `project`'s database to the JSON ledger and print its figures."""
    logging.disable(logging.INFO)
    with Store.open(Store.sqlite_url(Path(project) / "evolver.db")) as store:
        campaign = store.campaigns()[-1]
        trials = store.trials(campaign.id)
    if wall is None:  # saved afterwards: the span of its trials
        spans = [(t.started_at, t.ended_at) for t in trials if t.started_at and t.ended_at]
        wall = (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds() if spans else 0.0
    ledger = {"name": name, "status": campaign.status, "wall_seconds": wall,
              "spec": campaign.spec, "trials": [_trial_row(t) for t in trials]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(ledger, indent=1) + "\n", encoding="utf-8")
    print(f"ledger: {path.relative_to(ROOT)}")
    print_campaign(ledger)


def _trial_row(t: TrialRecord) -> dict:
    return {"number": t.number, "generation": t.generation, "status": t.status, "attempt": t.attempt,
            "stage": t.stage, "split": t.split, "seed": t.seed, "parents": list(t.parents), "hyp": t.hyp,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in t.metrics.items()},
            "fitness": t.fitness, "epochs_done": t.epochs_done,
            "started_at": t.started_at.isoformat() if t.started_at else None,
            "ended_at": t.ended_at.isoformat() if t.ended_at else None}


def _trial_record(row: dict) -> TrialRecord:
    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    return TrialRecord(
        campaign_id=1, number=row["number"], generation=row["generation"], status=row["status"],
        attempt=row["attempt"], hyp=row["hyp"], parents=tuple(row["parents"]), seed=row["seed"], worker=None,
        node_id=None, node_ip=None, gpu_id=None, started_at=when(row["started_at"]), ended_at=when(row["ended_at"]),
        metrics={k: (math.nan if v is None else v) for k, v in row["metrics"].items()}, fitness=row["fitness"],
        epochs_done=row["epochs_done"], error=None, weights_path=None, stage=row["stage"], split=row["split"])


def print_campaign(ledger: dict) -> ConfirmationReport:
    spec = CampaignSpec.model_validate(ledger["spec"])
    trials = [_trial_record(row) for row in ledger["trials"]]
    report = build_report(spec, trials, campaign_ended=True)
    search = [t for t in trials if t.stage == "search"]
    done = [t for t in search if t.status == "completed"]
    seconds = sorted((t.ended_at - t.started_at).total_seconds() for t in search if t.started_at and t.ended_at)
    print(f"\n== {ledger['name']}: {ledger['status']}, {ledger['wall_seconds'] / 60:.1f} min wall")
    print(f"   {spec.cfg or 'yolov5n'} from {Path(spec.weights or 'scratch').name} on {spec.data}")
    print(f"   {spec.epochs} epochs at {spec.img_size} px, batch {spec.batch_size}, freeze {len(spec.freeze)} layers, "
          f"trial_seeds {spec.trial_seeds}, {spec.cpu_workers} worker(s)")
    if seconds:
        print(f"search: {len(done)}/{len(search)} trials completed, trial median {seconds[len(seconds) // 2]:.0f} s, "
              f"{report.search_seconds:.0f} worker-s; raw best trial val fitness "
              f"{max(t.fitness for t in done):.4f}")
    print(f"confirmation ({report.state}): {report.seeds} fresh seeds x {report.epochs} epochs, scored on "
          f"{report.split}{' (the selecting split)' if report.split_selected else ' (unseen by the search)'}")
    print("  candidate    search(val)  confirmed per seed                mean ± SE           optimism  vs base")
    base = report.base
    for c in report.candidates:
        runs = " ".join(f"{f:.4f}" for f in c.fitnesses)
        search_fit = "-" if c.candidate.search_fitness is None else f"{c.candidate.search_fitness:.4f}"
        optimism = "-" if c.optimism is None else f"{c.optimism:+.4f}"
        print(f"  {c.candidate.label:11s}  {search_fit:>11s}  {runs:32s}  {_mean_se(c):18s}  {optimism:8s}  "
              f"{_versus(c, base)}")
    winner = report.winner
    if winner is not None and base is not None:
        if winner is base:
            print(f"winner: the base ({_mean_se(base)} on {report.split}): no candidate of the search beat it")
        else:
            print(f"winner {winner.candidate.label}: {_mean_se(winner)} vs base {_mean_se(base)} on {report.split}: "
                  f"{_versus(winner, base)}")
    raw = report.raw_best
    if raw is not None and raw.optimism is not None:
        print(f"raw best ({raw.candidate.label}): search {raw.candidate.search_fitness:.4f}, confirmed "
              f"{raw.mean:.4f}: optimism {raw.optimism:+.4f}")
    if report.spearman is not None:
        print(f"rank agreement search vs confirmed (Spearman, {len(report.candidates)} candidates): "
              f"{report.spearman:+.2f}")
    if report.cost_share is not None:
        print(f"confirmation cost: {report.confirm_seconds:.0f} of {report.search_seconds + report.confirm_seconds:.0f}"
              f" worker-s = {100 * report.cost_share:.1f} %")
        _print_default_cost(spec, trials, report)
    return report


def _print_default_cost(spec: CampaignSpec, trials: list[TrialRecord], report: ConfirmationReport) -> None:
    """The default stage (top_k 3, 2 seeds) is this plan's first 2 seeds, when this one has more:
    the plan is seed-major and the fresh seeds come from one stream, so a campaign with the
    defaults would have run exactly these retrainings."""
    default = ConfirmSpec()
    if spec.confirm.top_k != default.top_k or spec.confirm.seeds <= default.seeds:
        return
    first = sorted((t for t in trials if t.stage == "confirm"), key=lambda t: t.number)
    first = first[:(default.top_k + 1) * default.seeds]
    seconds = sum((t.ended_at - t.started_at).total_seconds() for t in first if t.started_at and t.ended_at)
    share = seconds / (report.search_seconds + seconds)
    print(f"with the default stage (top_k {default.top_k}, {default.seeds} seeds = the first {len(first)} "
          f"retrainings): {seconds:.0f} worker-s = {100 * share:.1f} % of search + confirmation")


def _versus(c, base) -> str:
    """The candidate's confirmed mean minus the base's, and that in standard errors
    (sqrt(SE_c² + SE_base²)), as the report's difference_se counts it."""
    if base is None or c is base or c.mean is None or base.mean is None:
        return "-"
    spread = math.hypot(c.se or 0.0, base.se or 0.0)
    in_se = f" ({(c.mean - base.mean) / spread:+.1f} SE)" if spread > 0 else ""
    return f"{c.mean - base.mean:+.4f}{in_se}"


def _mean_se(c) -> str:
    if c.mean is None:
        return "-"
    return f"{c.mean:.4f} ± {c.se:.4f}" if c.se is not None else f"{c.mean:.4f} (n=1)"


def report(_args: argparse.Namespace) -> None:
    ledgers = sorted(RESULTS.glob("*.json"))
    if not ledgers:
        print(f"no ledgers under {RESULTS}; run `python -m benchmarks.real_finetune run` first")
    for path in ledgers:
        print_campaign(json.loads(path.read_text(encoding="utf-8")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a campaign and its confirmation, save its ledger, print its figures")
    p.add_argument("--spec", type=Path, default=VEHICLES_SPEC, help="campaign yaml (default: %(default)s)")
    p.add_argument("--trials", type=int, help="search trials (generations of 1) instead of the yaml's")
    p.add_argument("--trial-seeds", choices=("shared", "per-trial"), default="per-trial")
    p.add_argument("--confirm-seeds", type=int, help="fresh seeds per candidate instead of the yaml's")
    p.add_argument("--seed", type=int, help="campaign seed instead of the yaml's")
    p.add_argument("--name", help="ledger name (default: campaign-trialseeds-seedN)")
    p.add_argument("--project", type=Path, help="a new folder for its database and run folder "
                   "(default: runs/real_finetune/NAME-TIME)")
    p.set_defaults(handler=run)
    p = sub.add_parser("ledger", help="save the ledger of a campaign run earlier (its project folder)")
    p.add_argument("project", type=Path)
    p.add_argument("--name", required=True)
    p.set_defaults(handler=lambda a: save_ledger(a.project, a.name))
    p = sub.add_parser("report", help="print the figures of every saved ledger")
    p.set_defaults(handler=report)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
