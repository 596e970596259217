"""Exporting a campaign's winner to the formats the campaign asks for (default ONNX),
parity-checked and recorded as artefacts. Once the confirmation stage has finished, the winner is
the confirmed one and the model is its first completed retraining (no selection on any split);
before that (or with `confirm: false`), the best search trial whose weights are kept.

The export itself runs as a Ray task so that a TensorRT engine is built where a GPU is: with
`engine` asked and a GPU in the cluster, the task first reserves one GPU through a placement group
(bounded wait: during a running campaign every GPU belongs to a trial worker) and runs there;
otherwise it runs on a CPU with a zero-CPU reservation, since trial workers may hold every CPU and
an export is short. Without a GPU or TensorRT the engine is skipped (logged, and named in the
`export-report.json` artefact), never failing the campaign for it.

Files go to `<run_dir>/export/` through a private temporary folder and are moved into place only
after the parity check passed, so two exports at once, or a failed one, never leave half a file
recorded. Recording (size, sha256) happens here, in the caller, which is the store's writer; the
run folder must therefore be on storage the caller and the Ray workers share.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from evolver.campaign import CampaignSpec
from evolver.confirmation import campaign_report
from evolver.ranking import ranked
from evolver.run_folder import WEIGHTS_KIND, weights_artefact_name
from evolver.store import ArtefactRecord, Store, TrialRecord

log = logging.getLogger(__name__)

EXPORT_FOLDER = "export"
REPORT_NAME = "export-report.json"
REPORT_KIND = "export-report"
PARITY_IMAGE_COUNT = 8  # images of the campaign's val split that the ONNX is checked on
DEFAULT_GPU_WAIT_SECONDS = 60.0


class WinnerExportError(RuntimeError):
    """The winner could not be exported (nothing to export, or the export failed its check)."""


class NoWinnerError(WinnerExportError):
    """No completed trial of the campaign has its weights kept."""


class ParityFailed(WinnerExportError):
    """onnxruntime disagreed with torch: nothing was published."""


@dataclass(frozen=True)
class WinnerExport:
    """What one export did: the artefacts recorded (files, then the report) and what was skipped."""

    campaign_id: int
    trial_number: int
    artefacts: tuple[ArtefactRecord, ...]
    skipped: Mapping[str, str] = field(default_factory=dict)  # format -> why it was not built
    parity: str | None = None  # ParityReport.summary() (None when no ONNX was made)


@dataclass(frozen=True)
class _TaskOutcome:
    """What the Ray task sends back: final file paths (only when published), parity, skips."""

    files: tuple[Any, ...]  # deploy.export.ExportedFile
    parity: Any | None  # deploy.export.ParityReport
    skipped: dict[str, str]
    node_ip: str


# --------------------------------------------------------------------------------- the winner
def find_winner(store: Store, campaign_id: int) -> tuple[TrialRecord, ArtefactRecord]:
    """The trial whose model is the campaign's, with its weights artefact (recorded and on disk):
    the confirmed winner's first completed retraining, else the best search trial (highest
    fitness, earliest on ties)."""
    weights = {a.name: a for a in store.artefacts(campaign_id) if a.kind == WEIGHTS_KIND}
    trials = store.trials(campaign_id)
    winner = campaign_report(store.campaign(campaign_id), trials).winner
    retrainings = [] if winner is None else [t for t in trials if t.number in winner.trials]
    completed = [t for t in retrainings if t.status == "completed"] + ranked(trials)
    for trial in completed:
        artefact = weights.get(weights_artefact_name(trial.number))
        if artefact is not None and Path(artefact.path).is_file():
            return trial, artefact
    raise NoWinnerError(f"campaign {campaign_id} has no completed trial with kept weights to export: "
                        f"{_why_no_weights(store, campaign_id, len(ranked(trials)))}")


def _why_no_weights(store: Store, campaign_id: int, completed: int) -> str:
    """The likeliest reason a campaign has nothing to export, for the one-line refusal."""
    spec = CampaignSpec.model_validate(store.campaign(campaign_id).spec)
    if spec.trainer == "sleep":
        return f"it is a dry run (trainer: sleep trains no model; {completed} trials completed)"
    if spec.keep_top_k == 0:
        return "its spec keeps no weights (keep_top_k: 0)"
    if completed == 0:
        return "no trial has completed yet"
    return f"the weights files of its {completed} completed trials are gone from {store.campaign(campaign_id).run_dir}"


def parity_image_files(data: str, limit: int = PARITY_IMAGE_COUNT) -> list[str]:
    """The first `limit` images of the campaign's val split (train when val is empty)."""
    from yolo.synthetic import resolve_data
    from yolo.data import load_data_config

    config = load_data_config(resolve_data(data))
    files = sorted(config.val) or sorted(config.train)
    return [str(p) for p in files[:limit]]


# --------------------------------------------------------------------------------- the task
def export_and_check(weights: str, out_dir: str, final_stem: str, formats: tuple[str, ...], img_size: int,
                     data: str) -> _TaskOutcome:
    """Export `weights`, check the ONNX against torch on the campaign's images, and only then move
    the files to `out_dir/<final_stem>.<suffix>`. Runs inside the Ray task (or in-process)."""
    import ray

    from deploy.export import SUFFIXES, check_parity, export_weights
    from deploy.tensorrt_engine import SKIP_REASON, tensorrt_available

    wanted, skipped = tuple(formats), {}
    if "engine" in wanted and not tensorrt_available():
        wanted = tuple(f for f in wanted if f != "engine")
        if "onnx" not in wanted:
            wanted = ("onnx", *wanted)  # an engine is built from the ONNX: the ONNX is still made
        skipped["engine"] = SKIP_REASON
    out = Path(out_dir)
    staging = out / f".partial-{uuid.uuid4().hex[:12]}"
    try:
        files = export_weights(weights, wanted, img_size=img_size, out_dir=staging)
        onnx = next((f for f in files if f.format == "onnx"), None)
        parity = None
        if onnx is not None:
            parity = check_parity(onnx.path, weights, parity_image_files(data))
            if not parity.passed:
                return _TaskOutcome((), parity, skipped, _node_ip(ray))
        published = []
        for exported in files:
            target = out / f"{final_stem}{SUFFIXES[exported.format]}"
            os.replace(exported.path, target)
            published.append(dataclasses.replace(exported, path=target))
        return _TaskOutcome(tuple(published), parity, skipped, _node_ip(ray))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _node_ip(ray: Any) -> str:
    return ray.util.get_node_ip_address() if ray.is_initialized() else "local"


def _run_on_ray(args: tuple, want_engine: bool, gpu_wait_seconds: float) -> tuple[_TaskOutcome, str | None]:
    """Run `export_and_check` as a Ray task; returns (outcome, why no GPU was used or None)."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    task = ray.remote(export_and_check)
    if want_engine and ray.cluster_resources().get("GPU", 0.0) >= 1:
        group = placement_group([{"GPU": 1}])
        try:
            ready, _ = ray.wait([group.ready()], timeout=gpu_wait_seconds)
            if ready:
                strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
                ref = task.options(num_gpus=1, num_cpus=0, scheduling_strategy=strategy).remote(*args)
                return ray.get(ref), None
        finally:
            remove_placement_group(group)
        no_gpu = f"no GPU of the Ray cluster became free within {gpu_wait_seconds:.0f}s"
    elif want_engine:
        no_gpu = "the Ray cluster has no GPU"
    else:
        no_gpu = None
    # Zero CPUs reserved: trial workers may hold every CPU of the cluster, and this is short.
    return ray.get(task.options(num_cpus=0).remote(*args)), no_gpu


# --------------------------------------------------------------------------------- entry points
def run_winner_export(store: Store, campaign_id: int, formats: Sequence[str] | None = None, *,
                      use_ray: bool | None = None,
                      gpu_wait_seconds: float = DEFAULT_GPU_WAIT_SECONDS) -> WinnerExport:
    """Export the campaign's winner to `formats` (default: the campaign's `exports`), check it,
    publish it in `<run_dir>/export/` and record every file (and the report) as an artefact.

    `use_ray`: None runs the export as a Ray task when this process is connected to Ray and in
    this process otherwise (an API server that only talks to Ray's Jobs API). Raises
    NoWinnerError when there is nothing to export, ParityFailed when the ONNX disagrees with torch.
    """
    from deploy.export import parse_formats

    record = store.campaign(campaign_id)
    spec = CampaignSpec.model_validate(record.spec)
    wanted = parse_formats(formats if formats is not None else spec.exports)
    trial, weights = find_winner(store, campaign_id)
    out_dir = Path(record.run_dir) / EXPORT_FOLDER
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(weights.name).stem  # trial-00005-best
    args = (weights.path, str(out_dir), stem, wanted, spec.img_size, spec.data)
    if use_ray is None:
        import ray

        use_ray = ray.is_initialized()
    no_gpu = None
    try:
        if use_ray:
            outcome, no_gpu = _run_on_ray(args, "engine" in wanted, gpu_wait_seconds)
        else:
            outcome = export_and_check(*args)
    except Exception as err:  # a RayTaskError carries the worker's traceback in its text
        raise WinnerExportError(f"campaign {campaign_id}: exporting trial {trial.number} to "
                                f"{', '.join(wanted)} failed: {err}") from err
    skipped = dict(outcome.skipped)
    if no_gpu and "engine" in skipped:
        skipped["engine"] = f"{no_gpu}; {skipped['engine']}"
    for fmt, reason in skipped.items():
        log.warning("campaign %d: winner trial %d not exported to %s: %s", campaign_id, trial.number, fmt, reason)
    parity = outcome.parity.summary() if outcome.parity is not None else None
    report = _write_report(out_dir, campaign_id, trial, wanted, outcome, skipped, parity)
    recorded = [store.add_artefact(campaign_id, f.path.name, f.format, f.path, trial_number=trial.number)
                for f in outcome.files]
    recorded.append(store.add_artefact(campaign_id, REPORT_NAME, REPORT_KIND, report, trial_number=trial.number))
    if outcome.parity is not None and not outcome.parity.passed:
        raise ParityFailed(f"campaign {campaign_id}: the ONNX of trial {trial.number} failed its parity check, "
                           f"nothing exported: {parity}")
    log.info("campaign %d: winner trial %d exported to %s on %s (%s)", campaign_id, trial.number,
             ", ".join(f.format for f in outcome.files) or "nothing", outcome.node_ip, parity or "no parity check")
    return WinnerExport(campaign_id, trial.number, tuple(recorded), skipped, parity)


def export_winner(store: Store, campaign_id: int, formats: Sequence[str] | None = None) -> list[ArtefactRecord]:
    """The recorded artefacts of `run_winner_export` (exported files, then `export-report.json`)."""
    return list(run_winner_export(store, campaign_id, formats).artefacts)


def _write_report(out_dir: Path, campaign_id: int, trial: TrialRecord, wanted: Sequence[str], outcome: _TaskOutcome,
                  skipped: Mapping[str, str], parity: str | None) -> Path:
    """`export-report.json`: what was asked, made, skipped and checked, for people downloading it."""
    check = outcome.parity
    document = {
        "campaign_id": campaign_id, "trial": trial.number, "generation": trial.generation,
        "fitness": trial.fitness, "asked": list(wanted),
        "exported": [{"name": f.path.name, "format": f.format, "size": f.size, "sha256": f.sha256}
                     for f in outcome.files],
        "skipped": dict(skipped), "node": outcome.node_ip,
        "parity": None if check is None else {
            "passed": check.passed, "summary": parity, "images": check.images, "max_abs_diff": check.max_abs_diff,
            "max_scaled_diff": check.max_scaled_diff, "atol": check.atol,
            "torch_detections": check.torch_detections, "onnx_detections": check.onnx_detections},
    }
    path = out_dir / REPORT_NAME
    staging = out_dir / f".{REPORT_NAME}.{uuid.uuid4().hex[:8]}"
    staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)
    return path
