"""Liveness and Prometheus metrics, both from SQL alone."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import StoreDep
from api.schemas import Health
from evolver.store import TRIAL_STATUSES

router = APIRouter(tags=["health"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", response_model=Health, responses={503: {"description": "the database is unreachable"}})
def healthz(store: StoreDep):
    try:
        store.ping()
    except Exception as err:
        return JSONResponse({"status": "error", "database": type(err).__name__}, status_code=503)
    return Health(status="ok", database="ok")


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(store: StoreDep) -> PlainTextResponse:
    """evolver_trials{campaign,status}, evolver_busy_workers, evolver_best_fitness{campaign},
    evolver_trials_per_hour{campaign} (finished trials over the span they ran in)."""
    counts = store.trial_summaries()
    now = datetime.now(UTC)
    lines = ["# HELP evolver_trials Trials of a campaign by status.", "# TYPE evolver_trials gauge"]
    for cid in sorted(counts):
        for status in TRIAL_STATUSES:
            lines.append(f'evolver_trials{{campaign="{cid}",status="{status}"}} {counts[cid].by_status.get(status, 0)}')
    busy = sum(c.by_status.get("running", 0) for c in counts.values())
    lines += ["# HELP evolver_busy_workers Trials running now (one per busy worker).",
              "# TYPE evolver_busy_workers gauge", f"evolver_busy_workers {busy}"]
    lines += ["# HELP evolver_best_fitness Best completed fitness of a campaign.", "# TYPE evolver_best_fitness gauge"]
    for cid in sorted(counts):
        if counts[cid].best_fitness is not None:
            lines.append(f'evolver_best_fitness{{campaign="{cid}"}} {counts[cid].best_fitness!r}')
    lines += ["# HELP evolver_trials_per_hour Finished trials per hour since the campaign's first trial started.",
              "# TYPE evolver_trials_per_hour gauge"]
    for cid in sorted(counts):
        span = counts[cid]
        if span.first_started is None or not span.finished:
            continue
        end = now if span.by_status.get("running") else (span.last_ended or now)
        hours = max((end - span.first_started).total_seconds(), 1.0) / 3600.0
        lines.append(f'evolver_trials_per_hour{{campaign="{cid}"}} {span.finished / hours:.6g}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type=PROMETHEUS_TEXT)
