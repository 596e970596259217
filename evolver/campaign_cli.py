"""Campaign subcommands of `evolver`: run, create, resume, status, cancel, best, import-csv.

`evolver run --campaign ID --db URL` is also the entry point a Ray job runs (the API's launcher and
`ray job submit` both use it). Everything reads and writes through the SQL store; nothing here
keeps state of its own.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from evolver.ranking import best_of

if TYPE_CHECKING:
    from evolver.campaign import CampaignSpec
    from evolver.store import Store

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "runs/evolve"

EXAMPLES = """\
examples:
  evolver run campaign.yaml                      evolve on a local Ray, SQLite in runs/evolve/
  evolver run campaign.yaml --address auto       use the running Ray cluster
  evolver run --campaign 3 --db postgresql+psycopg://u:p@db/evolver   (what a Ray job runs)
  evolver status                                 every campaign in the database
  evolver status 3                               generations and running trials of campaign 3
  evolver cancel 3 / evolver resume 3 / evolver best 3
  evolver resume 3 --trials-per-gpu 1            after a trial ran out of GPU memory with 2 per GPU
  evolver export-winner 3 --formats onnx,wts     export the best trial's weights again
  evolver create campaign.yaml && evolver import-csv 1 evolve.csv && evolver run --campaign 1
"""


def default_db(project: str = DEFAULT_PROJECT) -> str:
    from evolver.store import Store

    return Store.sqlite_url(Path(project).resolve() / "evolver.db")


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help=f"SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…); default: "
                                f"SQLite in {DEFAULT_PROJECT}/evolver.db")
    p.add_argument("--project", default=DEFAULT_PROJECT, help="folder of the default database and run folders")


def _add_ray(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="Ray cluster address ('auto' = the running cluster); default: a "
                                     "private local Ray on 127.0.0.1 (inside `ray job submit`: that job's cluster)")
    p.add_argument("--num-gpus", type=int, help="local Ray only: GPUs to give it (default: detect)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--lease", type=float, default=30.0, metavar="SECONDS",
                   help="the coordinator's hold on the campaign, renewed every second while it runs: another "
                        "coordinator is refused meanwhile, and may take over this long after it died")


def _add_trials_per_gpu(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials-per-gpu", type=int, metavar="N",
                   help="trials training at once on each GPU, each asking Ray for 1/N of it; overrides the "
                        "campaign's trials_per_gpu for this run only (the stored spec keeps its value, so a "
                        "later resume without the flag uses the spec's again); ignored without GPUs")


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("run", help="run an evolution campaign", formatter_class=fmt, epilog=EXAMPLES,
                       description="Create a campaign from a campaign yaml and run it to the end, or run an "
                                   "existing one (--campaign). Ctrl-C leaves it resumable.")
    p.add_argument("spec", nargs="?", help="campaign yaml (fields: see evolver/campaign.py or the README)")
    p.add_argument("--campaign", type=int, help="run this stored campaign instead of creating one")
    _add_db(p)
    _add_ray(p)
    _add_trials_per_gpu(p)
    p = sub.add_parser("create", help="store a campaign without running it", formatter_class=fmt)
    p.add_argument("spec", help="campaign yaml")
    _add_db(p)
    p = sub.add_parser("resume", help="continue a stopped, cancelled or crashed campaign", formatter_class=fmt)
    p.add_argument("campaign", type=int)
    _add_db(p)
    _add_ray(p)
    _add_trials_per_gpu(p)
    p = sub.add_parser("status", help="campaigns, or one campaign's generations and running trials")
    p.add_argument("campaign", type=int, nargs="?")
    _add_db(p)
    p = sub.add_parser("cancel", help="stop a campaign: no new trials, running ones stop within seconds")
    p.add_argument("campaign", type=int)
    _add_db(p)
    p = sub.add_parser("best", help="the answer: the confirmed winner (else the search's best trial, not "
                                    "confirmed), its figures, hyperparameters and weights")
    p.add_argument("campaign", type=int)
    _add_db(p)
    p = sub.add_parser("import-csv", help="seed a campaign's parents from a YOLOv5 evolve.csv")
    p.add_argument("campaign", type=int)
    p.add_argument("csv", help="evolve.csv written by YOLOv5 (or by evolver)")
    _add_db(p)
    p = sub.add_parser("export-winner", help="export the best trial's weights (ONNX / engine / .wts) as artefacts",
                       description="Export the campaign's best trial with kept weights to RUN_DIR/export/, check "
                                   "the ONNX against torch, and record the files. 'engine' is built on a GPU "
                                   "worker of the Ray cluster when one has TensorRT, else skipped with a warning.")
    p.add_argument("campaign", type=int)
    p.add_argument("--formats", help="comma-separated, from onnx,engine,wts; default: the campaign's `exports`")
    _add_db(p)
    _add_ray(p)


def _store_url(args: argparse.Namespace) -> str:
    """--db, else the default SQLite file, whose folder is made here (an empty folder is a valid start)."""
    if args.db:
        return args.db
    url = default_db(args.project)
    folder = Path(args.project).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from evolver.store.unavailable import StoreUnavailable

        why = "a file is in the way" if folder.is_file() else err.strerror or str(err)
        raise StoreUnavailable(url, f"cannot create its folder {folder} (--project): {why}") from err
    return url


@contextmanager
def _open_store(args: argparse.Namespace) -> Iterator[Store]:
    """The store of --db / --project; an unknown campaign id is told which database was asked."""
    from evolver.store import CampaignNotFound, Store
    from evolver.store.unavailable import masked_url

    url = _store_url(args)
    with Store.open(url) as store:
        try:
            yield store
        except CampaignNotFound as err:
            whose = "" if args.db else ", this folder's database"
            raise KeyError(f"{err} in {masked_url(url)}{whose} (`evolver status{_db_flag(args)}` lists its "
                           "campaigns; --project or --db opens another)") from None


def _checked_spec(spec_path: str) -> CampaignSpec:
    """The campaign yaml, validated with the files and splits it names, before anything is stored or
    started; every refusal names the yaml."""
    from pydantic import ValidationError

    from evolver.campaign import CampaignSpec, validation_error_text

    try:
        spec = CampaignSpec.from_yaml(spec_path)
    except ValidationError as err:
        raise ValueError(validation_error_text(err, spec_path)) from None
    try:
        spec.check_files()
        spec.check_data()  # a split that points at nothing fails now, not in every trial
        spec.base_hyp()  # a bad hyp_file fails now, before anything is stored
        spec.starting_population()  # so does a bad start_population
    except (ValueError, OSError) as err:
        raise ValueError(f"{spec_path}: {err}") from None
    return spec


def _check_run_flags(args: argparse.Namespace) -> None:
    if getattr(args, "lease", None) is not None and args.lease < 2:
        raise ValueError(f"--lease is renewed every second, so it needs at least 2 seconds, got {args.lease:g}")
    if getattr(args, "num_gpus", None) is not None and args.num_gpus < 0:
        raise ValueError(f"--num-gpus must be 0 or more, got {args.num_gpus}")
    if getattr(args, "trials_per_gpu", None) is not None:
        from evolver.campaign import MAX_TRIALS_PER_GPU

        if not 1 <= args.trials_per_gpu <= MAX_TRIALS_PER_GPU:
            raise ValueError(f"--trials-per-gpu must be 1 to {MAX_TRIALS_PER_GPU}, got {args.trials_per_gpu}")


def _fresh_run_dir(project: str, name: str) -> Path:
    base = Path(project).resolve() / name
    path, n = base, 2
    while path.exists():
        path, n = base.with_name(f"{name}{n}"), n + 1
    return path


def _create(store: Store, spec: CampaignSpec, project: str) -> int:
    run_dir = _fresh_run_dir(project, spec.name)
    campaign_id = store.create_campaign(spec.name, spec.to_json_dict(), str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    return campaign_id


def run_campaign(args: argparse.Namespace) -> int:
    """Every check that SQL and the files can answer comes first; Ray starts only for a campaign
    that will run."""
    from evolver import lifecycle, preflight
    from evolver.campaign import CampaignSpec

    if (args.spec is None) == (args.campaign is None):
        raise ValueError("give either a campaign yaml or --campaign ID")
    _check_run_flags(args)
    new_spec = _checked_spec(args.spec) if args.spec is not None else None
    with _open_store(args) as store:
        if new_spec is not None:
            campaign_id = _create(store, new_spec, args.project)
        elif args.command == "resume":
            campaign_id = preflight.check_resumable(store, args.campaign).id
            if store.campaign(campaign_id).status != "queued":
                # ended, or its coordinator died: queued for the claim (a lease that lapses within a
                # lease's length is waited out: after a SIGKILL nobody is left to release it)
                lifecycle.reopen(store, campaign_id, wait_for_lapse=max(args.lease, 30.0) + 5.0)
        else:
            campaign_id = preflight.check_runnable(store, args.campaign).id
        record = store.campaign(campaign_id)
        spec = CampaignSpec.model_validate(record.spec)
        confirming = (f" + up to {spec.confirm.trials()} confirmation retrainings ({spec.confirm.top_k} best + base "
                      f"x {spec.confirm.seeds} fresh seeds)" if spec.confirm.enabled else "")
        print(f"campaign {campaign_id} ({record.name}): {spec.total_trials} search trials{confirming}, "
              f"run folder {record.run_dir}")
        trials_per_gpu = getattr(args, "trials_per_gpu", None)
        if trials_per_gpu is not None and trials_per_gpu != spec.trials_per_gpu:
            print(f"{trials_per_gpu} trial(s) per GPU for this run (--trials-per-gpu; the campaign's spec "
                  f"says {spec.trials_per_gpu})")
        from evolver import coordinator
        from evolver.cluster import connect

        connect(args.address, num_gpus=args.num_gpus)
        outcome = coordinator.run_campaign(store, campaign_id, coordinator.CoordinatorSettings(
            progress=not args.quiet, lease_seconds=args.lease), trials_per_gpu=trials_per_gpu)
        if outcome.interrupted:
            print(f"campaign {campaign_id} interrupted by {outcome.interrupted} after {outcome.seconds:.0f}s: "
                  f"{outcome.completed} trials completed are kept; `evolver resume {campaign_id}` continues it")
            return 130
        best = "-" if outcome.best_fitness is None else f"{outcome.best_fitness:.5f} (trial {outcome.best_trial})"
        print(f"campaign {campaign_id} {outcome.status} in {outcome.seconds:.1f}s: {outcome.completed} completed, "
              f"{outcome.failed} failed, {outcome.pruned} pruned, {outcome.cancelled} cancelled; best fitness {best}")
        print(f"hyp_evolved.yaml and evolve.csv in {record.run_dir}")
        return 0 if outcome.status in ("completed", "cancelled") else 1


def create_campaign(args: argparse.Namespace) -> int:
    """Prints `campaign ID (NAME) created ...`: the id is the second word, for scripts
    (`evolver create x.yaml | awk '{print $2}'`)."""
    spec = _checked_spec(args.spec)
    with _open_store(args) as store:
        campaign_id = _create(store, spec, args.project)
        record = store.campaign(campaign_id)
    print(f"campaign {campaign_id} ({spec.name}) created, run folder {record.run_dir}; "
          f"`evolver run --campaign {campaign_id}{_db_flag(args)}` runs it")
    return 0


def _db_flag(args: argparse.Namespace) -> str:
    """The flags that point a follow-up command at the same database (none for the default)."""
    if args.db:
        return " --db URL"
    return "" if args.project == DEFAULT_PROJECT else f" --project {args.project}"


def show_status(args: argparse.Namespace) -> int:
    from evolver.campaign import CampaignSpec
    from evolver.confirmation import campaign_report
    from evolver.store.unavailable import masked_url

    with _open_store(args) as store:
        if args.campaign is None:
            campaigns = store.campaigns()
            if not campaigns:
                print(f"no campaigns in {masked_url(_store_url(args))} yet; "
                      "`evolver run campaign.yaml` starts one")
                return 0
            print(f"{'id':>4} {'name':<24} {'status':<10} {'trials':>11} {'raw best':>9}  confirmation")
            for c in campaigns:
                spec = CampaignSpec.model_validate(c.spec)
                trials = store.trials(c.id)
                done = sum(t.finished for t in trials)
                total = spec.total_trials + spec.confirm.trials()
                best = best_of(trials)  # the search's raw best: labelled by the confirmation's state
                print(f"{c.id:>4} {c.name:<24} {c.status:<10} {done:>5}/{total:<5} "
                      f"{'-' if best is None else f'{best.fitness:.5f}':>9}  {campaign_report(c, trials).state}")
            return 0
        c = store.campaign(args.campaign)
        spec = CampaignSpec.model_validate(c.spec)
        trials = store.trials(c.id)
        counts = {s: sum(t.status == s for t in trials) for s in
                  ("completed", "running", "pending", "failed", "pruned", "cancelled")}
        retrainings = f" + up to {spec.confirm.trials()} retrainings" if spec.confirm.enabled else ""
        print(f"campaign {c.id} {c.name}: {c.status}; {spec.total_trials} search trials{retrainings}: "
              + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f"; run folder {c.run_dir}")
        if c.error:
            print(f"error: {c.error}")
        for line in campaign_report(c, trials).summary_lines():
            print(line)
        print(f"{'gen':>5} {'best':>9} {'mean':>9} {'best trial':>10}")
        for g in store.generations(c.id):
            if g.closed_at is not None:
                print(f"{g.index:>5} {_num(g.best_fitness):>9} {_num(g.mean_fitness):>9} "
                      f"{'-' if g.best_trial is None else g.best_trial:>10}")
        for t in trials:
            if t.status == "running":
                epochs = store.epochs(c.id, t.number)
                what = "retraining" if t.stage == "confirm" else "trial"
                print(f"running: {what} {t.number} (attempt {t.attempt}) on {t.worker} node {t.node_ip} "
                      f"gpu {t.gpu_id or '-'}: epoch {len(epochs)}/{spec.epochs_of(t.stage)}"
                      + (f", fitness {epochs[-1].fitness:.5f}" if epochs else ""))
        return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def cancel_campaign(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        from evolver import lifecycle

        was = store.campaign(args.campaign).status
        try:
            lifecycle.cancel(store, args.campaign)
        except lifecycle.LifecycleError:
            print(f"campaign {args.campaign} is already {was}")
            return 0
        if was == "cancelled":
            print(f"campaign {args.campaign} is already cancelled")
        else:
            print(f"campaign {args.campaign} cancelled; its coordinator stops running trials within seconds")
        return 0


def show_best(args: argparse.Namespace) -> int:
    """The campaign's answer: the confirmed winner once the confirmation stage has finished, else
    the search's best single trial, said to be not confirmed."""
    import yaml

    from evolver.confirmation import campaign_report

    with _open_store(args) as store:
        record = store.campaign(args.campaign)
        trials = store.trials(record.id)
        report = campaign_report(record, trials)
        winner, best = report.winner, best_of(trials)
        if winner is None and best is None:
            print(f"campaign {record.id} has no completed trial yet")
            return 1
        for line in report.summary_lines():
            print(line)
        weights = {a.trial_number: a.path for a in store.artefacts(record.id)}
        if winner is not None:
            base = " (the base: the search did not beat it)" if winner.candidate.is_base else ""
            print(f"answer: the confirmed winner, {winner.candidate.label}{base}, confirmed fitness "
                  f"{_num(winner.mean)} over {winner.n} fresh seed(s)")
            print(yaml.safe_dump(winner.candidate.hyp, sort_keys=False).rstrip())
            kept = [n for n in winner.trials if n in weights]  # its retrainings' weights
        else:
            print(f"answer: not confirmed: the search's best single trial, trial {best.number} "
                  f"(generation {best.generation}), search fitness {best.fitness:.5f}")
            print("  " + "  ".join(f"{k} {v:.4f}" for k, v in best.metrics.items()))
            print(yaml.safe_dump(best.hyp, sort_keys=False).rstrip())
            kept = [best.number] if best.number in weights else []
        if kept:
            print(f"weights: {weights[kept[0]]}")
        print(f"hyp_evolved.yaml: {Path(record.run_dir) / 'hyp_evolved.yaml'}")
        return 0


def import_csv(args: argparse.Namespace) -> int:
    from evolver.campaign import CampaignSpec
    from evolver.exchange import read_evolve_csv
    from yolo.fitness import fitness

    rows = read_evolve_csv(args.csv)  # a missing or malformed file is refused before the store opens
    if not rows:
        raise ValueError(f"{args.csv}: no rows under its header: nothing to import")
    with _open_store(args) as store:
        record = store.campaign(args.campaign)
        spec = CampaignSpec.model_validate(record.spec)
        parents = [(hyp, metrics, fitness(metrics, spec.fitness_weights)) for metrics, hyp in rows]
        count = store.add_imported_parents(record.id, parents)
        stored = len(store.imported_parents(record.id))
    already = len(rows) - count
    skipped = f"; {already} of its {len(rows)} rows were already there (a row counts once)" if already else ""
    print(f"campaign {record.id}: {count} parents imported from {args.csv}{skipped}; {stored} imported parents in all")
    return 0


def export_winner_cli(args: argparse.Namespace) -> int:
    from deploy.export import parse_formats
    from evolver.winner_export import find_winner, run_winner_export

    _check_run_flags(args)
    if args.formats is not None:
        parse_formats(args.formats)
    with _open_store(args) as store:
        find_winner(store, args.campaign)  # an unknown id, or nothing to export, fails before Ray starts
        from evolver.cluster import connect

        connect(args.address, num_gpus=args.num_gpus)
        done = run_winner_export(store, args.campaign, args.formats.split(",") if args.formats else None)
        print(f"campaign {done.campaign_id}: winner trial {done.trial_number}; {done.parity or 'no parity check'}")
        for artefact in done.artefacts:
            print(f"  {artefact.kind:<13} {artefact.size:>11,} B  sha256 {artefact.sha256[:16]}  {artefact.path}")
        for fmt, reason in done.skipped.items():
            print(f"  skipped {fmt}: {reason}")
        return 0


HANDLERS = {
    "run": run_campaign, "resume": lambda a: run_campaign(_as_resume(a)), "create": create_campaign,
    "status": show_status, "cancel": cancel_campaign, "best": show_best, "import-csv": import_csv,
    "export-winner": export_winner_cli,
}


def _as_resume(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "spec": None})


def register(sub: argparse._SubParsersAction) -> dict:
    """The campaign commands (found by the dispatcher through the `evolver.commands` entry point)."""
    add_subcommands(sub)
    return dict(HANDLERS)
