"""The campaign coordinator: keeps every worker busy with a child bred from the best finished
trials, and writes every state change to SQL (it is the store's only writer).

One loop, no threads. Each turn records the results that came in, polls the busy workers'
per-epoch progress (record it, prune by the median rule) and breeds a trial for every idle worker,
all in one SQL transaction; then it sends those trials out and waits up to `poll_seconds` for the
next result. Now and then it checks the campaign's status in SQL (cancel) and grows the pool when
GPUs join. All state lives in SQL, so a coordinator that dies is replaced by running the same
campaign again: completed trials stay, interrupted ones run again with attempt + 1, and the total
number of trials stays exact.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import ray
from ray.exceptions import RayActorError

from evolver import confirmation, lifecycle
from evolver.campaign import CampaignSpec
from evolver.lifecycle import Lease
from evolver.tally import CampaignTally
from evolver.progress import CampaignProgress
from evolver.breeding import Breeding
from evolver.pruning import Pruner, build_pruner
from evolver.run_folder import RunFolder
from evolver.searcher import OUTCOMES, Observation, Searcher
from evolver.stop_signals import StopSignals
from evolver.store import Placement, Store, TrialRecord
from workers import TrialResult, TrialSpec, WorkerHandle, WorkerLocation, WorkerPool
from workers.start_weights import safe_start_weights

log = logging.getLogger(__name__)

FINISHED = ("completed", "failed", "pruned", "cancelled")


@dataclass(frozen=True)
class CoordinatorSettings:
    poll_seconds: float = 0.5  # longest wait for a result before the loop looks at anything else
    progress_seconds: float = 1.0  # how often busy workers are asked for their epoch updates
    control_seconds: float = 1.0  # how often the campaign's status is read (cancel)
    grow_seconds: float = 5.0  # how often the cluster is checked for new GPUs
    stop_grace_seconds: float = 30.0  # a stopped trial that does not return by then is killed
    lease_seconds: float = 30.0  # the campaign's lease (renewed every control period): a dead coordinator's
    # campaign can be taken over this long after its last renewal
    progress: bool = True


@dataclass(frozen=True)
class CampaignOutcome:
    campaign_id: int
    status: str
    completed: int
    failed: int
    pruned: int
    cancelled: int
    best_trial: int | None
    best_fitness: float | None
    seconds: float
    interrupted: str | None = None  # the signal that stopped it (SIGINT / SIGTERM), if one did


class CoordinatorStats(Protocol):
    """Where a coordinator reports what benchmarks measure (its own loop keeps no counters)."""

    def trial_recorded(self, busy_seconds: float, overhead_seconds: float) -> None:
        """A trial's result came in: time it held its worker, and its cost outside train + val."""

    def waited(self, seconds: float) -> None:
        """The loop waited this long for results (the rest of its time is its own work)."""


class NoStats:
    def trial_recorded(self, busy_seconds: float, overhead_seconds: float) -> None:
        pass

    def waited(self, seconds: float) -> None:
        pass


@dataclass
class _Busy:
    """A trial out on a worker."""

    worker: WorkerHandle
    trial: TrialRecord
    ref: ray.ObjectRef
    epochs: list[float] = field(default_factory=list)
    stop_reason: str | None = None  # "pruned" or "cancelled" once we asked it to stop
    stop_asked_at: float = 0.0
    dispatched_at: float = field(default_factory=time.monotonic)
    unrecorded: list[tuple[int, dict, float]] = field(default_factory=list)  # epochs stored with the result


@dataclass(frozen=True)
class _Outgoing:
    """A trial stored as running on a worker, not yet sent to it."""

    worker: WorkerHandle
    trial: TrialRecord
    spec: TrialSpec
    dispatched_at: float


class Coordinator:
    def __init__(self, store: Store, campaign_id: int, pool: WorkerPool,
                 settings: CoordinatorSettings = CoordinatorSettings(), stats: CoordinatorStats | None = None):
        self.store, self.campaign_id, self.pool, self.settings = store, campaign_id, pool, settings
        record = store.campaign(campaign_id)
        self.name = record.name
        self.spec = CampaignSpec.model_validate(record.spec)
        self.run_dir = Path(record.run_dir)
        es = self.spec.early_stopping
        self.pruner: Pruner = build_pruner(es.rule, es.min_epochs, es.min_trials)
        self.folder = RunFolder(store, campaign_id, self.name, self.run_dir, self.spec)
        self.total = self.spec.total_trials + self.spec.confirm.trials()  # exact once the confirmation is planned
        self.confirm_split = confirmation.confirm_split(self.spec)
        self.lease = Lease(seconds=settings.lease_seconds)
        self._lost_lease = False
        self.start_weights = self.spec.weights  # what trials load: a YOLOv5 file is converted in run()
        self._queue: deque[TrialRecord] = deque()  # trials to (re)run before breeding new ones
        self._busy: dict[ray.ObjectRef, _Busy] = {}
        self._locations: dict[str, ray.ObjectRef | WorkerLocation] = {}  # worker -> pending ref or location
        self.tally = CampaignTally(self.spec.population, self.total, search_total=self.spec.total_trials)  # _load
        self.breeding: Breeding | None = None  # the searcher and its rules, made in _load
        self._cancelling = False
        self._interrupted: str | None = None  # the stop signal received (evolver.stop_signals)
        self._polls: dict[ray.ObjectRef, _Busy] = {}  # progress requests in flight
        self._next_poll = 0.0
        self.stats = stats or NoStats()

    # ----------------------------------------------------------------------------- state
    def _load(self) -> None:
        """Rebuild everything from SQL: the GA's observations, the queue, the counts, the files."""
        # Built here, not in __init__, so a searcher that cannot be made (Optuna missing) fails
        # the campaign with that reason instead of leaving it queued.
        searcher: Searcher = self.spec.build_searcher()
        for parent in self.store.imported_parents(self.campaign_id):
            searcher.observe(Observation(number=-(parent.index + 1), hyp=parent.hyp, fitness=parent.fitness))
        trials = self.store.trials(self.campaign_id)
        self.tally = CampaignTally.rebuild(trials, self.spec.population, self.total,
                                           search_total=self.spec.total_trials)
        shared = confirmation.shared_training_seed(self.spec.seed) if self.spec.trial_seeds == "shared" else None
        self.breeding = Breeding(searcher, self.tally, sync=self.spec.sync, shared_seed=shared,
                                 confirmation=self._plan_confirmation)
        completed = [t for t in trials if t.status == "completed"]
        for trial in trials:  # the searcher hears of every finished search trial, as it did when each ended
            self._observe(trial)
        for trial in completed:
            if self.spec.early_stopping.rule != "none" and trial.stage == "search":
                self.pruner.add_completed([e.fitness for e in self.store.epochs(self.campaign_id, trial.number)])
        for trial in trials:
            if trial.status in ("running", "cancelled"):  # interrupted by a crash or a cancel: run again
                self._queue.append(self._requeue(trial))
            elif trial.status == "pending":  # bred and stored, never started
                self._queue.append(trial)
        self._queue = deque(t for t in self._queue if t.status not in FINISHED)
        self.folder.rebuild(completed)
        for generation in range(self.tally.next_number // self.spec.population + 1):
            self._close_generation(generation, ask_sql=True)

    def _requeue(self, trial: TrialRecord) -> TrialRecord:
        """Back to pending with attempt + 1, or failed when a crash interrupted it too often (a cancel
        does not count against `max_attempts`)."""
        if trial.attempt >= self.spec.max_attempts and trial.status == "running":
            self.store.finish_trial(self.campaign_id, trial.number, trial.attempt, "failed", metrics={},
                                    fitness=None, epochs_done=0,
                                    error=f"interrupted {trial.attempt} times (max_attempts={self.spec.max_attempts})")
            failed = self.store.trial(self.campaign_id, trial.number)
            self.tally.finish(failed)
            self._observe(failed)
            self._close_generation(trial.generation)
            return failed
        self.store.requeue_trial(self.campaign_id, trial.number)
        return self.store.trial(self.campaign_id, trial.number)

    def _observe(self, trial: TrialRecord) -> None:
        """A finished search trial reaches the searcher (when: `Breeding.completed`): a completed one
        as a parent candidate, a pruned or failed one as ended (Optuna's study stops counting it as
        running). Cancelled trials run again; retrainings are scored on another split and never breed."""
        if trial.stage != "search" or trial.status not in OUTCOMES:
            return
        fitness = (trial.fitness or 0.0) if trial.status == "completed" else math.nan
        self.breeding.completed(trial.generation, Observation(trial.number, trial.hyp, fitness, trial.status))

    def _plan_confirmation(self) -> list:
        """The confirmation stage's trials, planned from the stored search trials (all finished)."""
        search = [t for t in self.store.trials(self.campaign_id) if t.stage == "search"]
        planned = confirmation.plan(self.spec.confirm, self.spec.seed, search)
        if planned:
            log.info("campaign %d: search done; confirming %d candidates x %d seeds on the %s split",
                     self.campaign_id, len(planned) // self.spec.confirm.seeds, self.spec.confirm.seeds,
                     self.confirm_split)
        return planned

    def _close_generation(self, generation: int, *, ask_sql: bool = False) -> None:
        """Close the generation in SQL once all its trials finished. SQL is asked only when the
        tally says it may be complete, or (`ask_sql`, at start) whatever the tally says."""
        if generation >= self.spec.generations:
            return  # the confirmation's retrainings: no generation of the search
        if generation in self.tally.closed or not (ask_sql or self.tally.may_be_complete(generation)):
            return
        if self.store.close_generation(self.campaign_id, generation, self.spec.population) is not None:
            self.breeding.generation_closed(generation)

    # ----------------------------------------------------------------------------- workers
    def _sync_workers(self) -> None:
        for handle in self.pool.sync():
            self._locations[handle.name] = handle.actor.location.remote()
        for handle in self.pool.workers:
            if handle.name not in self._locations:
                self._locations[handle.name] = handle.actor.location.remote()
        self.breeding.workers_changed(len(self.pool.workers))

    def _idle_workers(self) -> list[WorkerHandle]:
        """Placed, live workers with nothing to do (a worker whose GPU is not there yet is not idle)."""
        busy = {b.worker.name for b in self._busy.values()}
        idle = []
        for handle in self.pool.workers:
            if handle.name in busy:
                continue
            location = self._locations.get(handle.name)
            if isinstance(location, ray.ObjectRef):
                ready, _ = ray.wait([location], timeout=0)
                if not ready:
                    continue
                try:
                    location = ray.get(location)
                except RayActorError:
                    self._replace(handle)
                    continue
                self._locations[handle.name] = location
            idle.append(handle)
        return idle

    def _replace(self, handle: WorkerHandle) -> None:
        log.warning("worker %s died; replacing it", handle.name)
        fresh = self.pool.replace(handle)
        self._locations.pop(handle.name, None)
        self._locations[fresh.name] = fresh.actor.location.remote()

    # ----------------------------------------------------------------------------- dispatch
    def _next_trial(self, placement: Placement) -> TrialRecord | None:
        """The next trial, already marked running at `placement` (a re-queued one, else a new
        child bred now: breeding and dispatch are then one SQL transaction)."""
        if self._queue:
            trial = self._queue.popleft()
            self.store.start_trial(self.campaign_id, trial.number, trial.attempt, placement)
            return trial
        child = None if self._cancelling else self.breeding.next_child()
        if child is None:
            return None
        suggestion = child.suggestion
        split = self.confirm_split if child.stage == "confirm" else "val"
        return self.store.add_trial(self.campaign_id, child.number, child.generation, suggestion.hyp,
                                    suggestion.parents, suggestion.seed, running_on=placement, stage=child.stage,
                                    split=split)

    def _dispatch(self) -> list[_Outgoing]:
        """Breed (or take from the queue) a trial for every idle worker and mark it running there
        in SQL; the trials go out to the workers by `_send`, once that is committed."""
        outgoing = []
        for handle in self._idle_workers():
            dispatched_at = time.monotonic()  # breeding counts as the trial's overhead too
            location = self._locations[handle.name]
            trial = self._next_trial(Placement(worker=handle.name, node_id=location.node_id,
                                               node_ip=location.node_ip, gpu_id=location.gpu_id))
            if trial is None:
                break
            train = self.spec.train_config(seed=trial.seed, weights=self.start_weights, stage=trial.stage,
                                           save_dir=str(self.run_dir / "trials" / f"{trial.number:05d}"))
            spec = TrialSpec(campaign_id=self.campaign_id, number=trial.number, attempt=trial.attempt,
                             hyp=trial.hyp, train=train, split=trial.split)
            outgoing.append(_Outgoing(handle, trial, spec, dispatched_at))
        return outgoing

    def _send(self, outgoing: list[_Outgoing], progress: CampaignProgress) -> None:
        for out in outgoing:
            ref = out.worker.actor.run.remote(out.spec)
            self._busy[ref] = _Busy(out.worker, out.trial, ref, dispatched_at=out.dispatched_at)
            progress.trial_started(out.worker.name, out.trial.number, out.spec.train.epochs)

    # ----------------------------------------------------------------------------- results
    def _wait_for_results(self) -> list[ray.ObjectRef]:
        """Block up to `poll_seconds` for a result; then take every result that is ready."""
        waited = time.perf_counter()
        if not self._busy:
            time.sleep(self.settings.poll_seconds)
            self.stats.waited(time.perf_counter() - waited)
            return []
        refs = list(self._busy)
        ready, _ = ray.wait(refs, num_returns=1, timeout=self.settings.poll_seconds)
        self.stats.waited(time.perf_counter() - waited)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return ready

    def _take_results(self, ready: list[ray.ObjectRef], progress: CampaignProgress) -> None:
        for ref in ready:
            busy = self._busy.pop(ref)
            try:
                result: TrialResult = ray.get(ref)
            except RayActorError as err:
                self._worker_lost(busy, err, progress)
                continue
            self._record(busy, result, progress)

    def _worker_lost(self, busy: _Busy, err: Exception, progress: CampaignProgress) -> None:
        trial = busy.trial
        log.warning("worker %s lost during trial %d (attempt %d): %s", busy.worker.name, trial.number,
                    trial.attempt, type(err).__name__)
        self._replace(busy.worker)
        if busy.stop_reason == "cancelled":
            self._finish(busy, "cancelled", {}, None, len(busy.epochs), "cancelled; worker lost", None, progress)
            return
        requeued = self._requeue(self.store.trial(self.campaign_id, trial.number))
        if requeued.status == "pending":
            self._queue.appendleft(requeued)
        progress.trial_finished(busy.worker.name, "requeued", self._best_fitness, self._generation_label())

    def _record(self, busy: _Busy, result: TrialResult, progress: CampaignProgress) -> None:
        busy.unrecorded = self._take_updates(busy, result.updates, progress)  # stored with the result
        self._finish_from_result(busy, result, progress)
        self.stats.trial_recorded(busy_seconds=result.ended_at - result.started_at,
                                  overhead_seconds=time.monotonic() - busy.dispatched_at - result.train_seconds)

    def _finish_from_result(self, busy: _Busy, result: TrialResult, progress: CampaignProgress) -> None:
        if result.status == "completed":  # the worker scored it with this campaign's weights (its spec)
            self._finish(busy, "completed", result.metrics, result.fitness, result.epochs_done, None,
                         result.weights_path, progress)
        elif result.status == "stopped":
            status = busy.stop_reason or "cancelled"
            value = busy.epochs[-1] if busy.epochs else None
            self._finish(busy, status, result.metrics, value, result.epochs_done, f"{status} by the coordinator",
                         None, progress)
        else:
            self._finish(busy, "failed", result.metrics, None, result.epochs_done, result.error, None, progress)

    def _finish(self, busy: _Busy, status: str, metrics: dict, fitness: float | None, epochs_done: int,
                error: str | None, weights: str | None, progress: CampaignProgress) -> None:
        trial = busy.trial
        changed = self.store.finish_trial(self.campaign_id, trial.number, trial.attempt, status, metrics=metrics,
                                          fitness=fitness, epochs_done=epochs_done, error=error,
                                          weights_path=weights, epochs=busy.unrecorded)
        if changed:
            record = dataclasses.replace(trial, status=status, metrics=dict(metrics), fitness=fitness,
                                         epochs_done=epochs_done, weights_path=weights)
            self.tally.finish(record)
            self._observe(record)
            if status == "completed" and record.stage == "search":
                self.pruner.add_completed(busy.epochs)
            if record.stage == "confirm":
                self.folder.add_retraining(record)
            elif status == "completed":
                self.folder.add_completed(record, self.tally.counts["completed"])
            self._close_generation(trial.generation)
        progress.trial_finished(busy.worker.name, status, self._best_fitness, self._generation_label())

    @property
    def _best_fitness(self) -> float | None:
        return None if self.tally.best is None else self.tally.best.fitness

    def _generation_label(self) -> str:
        return self.tally.generation_label(self.spec.generations)

    # ----------------------------------------------------------------------------- progress
    def _poll_progress(self, progress: CampaignProgress) -> None:
        """Once per `progress_seconds`: take in the answers to the last round of progress requests
        that have arrived, and ask the busy workers again. Never blocks the loop (results first),
        and costs one Ray call per busy worker per period, not per loop turn."""
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.settings.progress_seconds
        if self._polls:
            ready, _ = ray.wait(list(self._polls), num_returns=len(self._polls), timeout=0)
            for ref in ready:
                busy = self._polls.pop(ref)
                try:
                    updates = ray.get(ref)
                except RayActorError:
                    continue  # its run() reference reports the loss
                self._drain_updates(busy, updates, progress)
        asked = {id(busy) for busy in self._polls.values()}
        for busy in self._busy.values():
            # A trial out for less than a period is not asked yet: what it reported meanwhile
            # waits in its worker's queue for the next poll or comes back with its result, so
            # nothing is lost, and trials shorter than a period cost no poll at all.
            if id(busy) not in asked and now - busy.dispatched_at >= self.settings.progress_seconds:
                self._polls[busy.worker.actor.poll.remote()] = busy

    def _drain_updates(self, busy: _Busy, updates, progress: CampaignProgress | None = None) -> None:
        """Record live epoch updates of a running trial (and prune by them)."""
        for epoch, metrics, value in self._take_updates(busy, updates, progress):
            self.store.record_epoch(self.campaign_id, busy.trial.number, busy.trial.attempt, epoch, metrics, value)

    def _take_updates(self, busy: _Busy, updates, progress: CampaignProgress | None
                      ) -> list[tuple[int, dict, float]]:
        """The updates not seen before, as (epoch, metrics, fitness); the pruning rule sees each."""
        fresh = []
        for update in updates:
            if update.number != busy.trial.number or update.attempt != busy.trial.attempt:
                continue
            if update.epoch < len(busy.epochs):
                continue  # seen already
            value = update.fitness  # scored on the worker with the campaign's weights
            busy.epochs.append(value)
            fresh.append((update.epoch, update.metrics, value))
            if progress is not None:
                progress.epoch_done(busy.worker.name, update.number, update.epoch, update.epochs)
            if busy.stop_reason is None and busy.trial.stage == "search" and update.epoch + 1 < update.epochs and \
                    self.pruner.should_prune(update.epoch, value):
                log.info("pruning trial %d after epoch %d (fitness %.4f below the median)", update.number,
                         update.epoch + 1, value)
                self._ask_stop(busy, "pruned")
        return fresh

    def _ask_stop(self, busy: _Busy, reason: str) -> None:
        busy.stop_reason = reason
        busy.stop_asked_at = time.monotonic()
        busy.worker.actor.stop.remote(self.campaign_id, busy.trial.number)

    # ----------------------------------------------------------------------------- control
    def _renew_lease(self) -> None:
        """Renew the lease; a cancel (or losing the campaign) stops every running trial."""
        status = lifecycle.renew(self.store, self.campaign_id, self.lease)
        if self._cancelling or status == "running":
            return
        if status is None:
            log.error("campaign %d: this coordinator lost its lease (another took over): stopping",
                      self.campaign_id)
            self._lost_lease = True
        else:
            log.info("campaign %d %s: stopping %d running trial(s)", self.campaign_id, status, len(self._busy))
        self._cancelling = True
        for busy in self._busy.values():
            self._ask_stop(busy, "cancelled")

    def _kill_overdue(self) -> None:
        """A stopped trial must come back within the grace period, else its worker is killed."""
        now = time.monotonic()
        for busy in list(self._busy.values()):
            if busy.stop_reason and now - busy.stop_asked_at > self.settings.stop_grace_seconds:
                log.warning("trial %d ignored stop for %.0fs; killing worker %s", busy.trial.number,
                            now - busy.stop_asked_at, busy.worker.name)
                ray.kill(busy.worker.actor, no_restart=True)
                busy.stop_asked_at = now

    # ----------------------------------------------------------------------------- main loop
    def run(self) -> CampaignOutcome:
        started = time.monotonic()
        # Exactly one coordinator per campaign: refused while another holds it; a campaign just
        # reopened may still be held by the coordinator that is stopping it, so wait for that.
        lifecycle.claim(self.store, self.campaign_id, self.lease, wait_seconds=self.settings.lease_seconds)
        try:
            try:
                self.start_weights = safe_start_weights(self.spec.weights, self.run_dir)
            except (ValueError, OSError) as err:  # unreadable, unsafe or unsupported: no trial can run
                raise ValueError(f"weights: {err}") from err
            self._load()
        except Exception as err:
            lifecycle.release(self.store, self.campaign_id, self.lease, "failed", error=str(err))
            raise
        except BaseException:  # a second Ctrl-C while starting: resumable at once
            lifecycle.abandon(self.store, self.campaign_id, self.lease)
            raise
        progress = CampaignProgress(self.name, self.total, self.tally.finished, enabled=self.settings.progress)
        next_control = next_grow = time.monotonic()
        ready: list[ray.ObjectRef] = []
        with StopSignals() as signals:
            try:
                self._sync_workers()
                while True:
                    if signals.received:  # Ctrl-C / SIGTERM: stop between two turns, never inside one
                        self._interrupted = signals.received
                        break
                    now = time.monotonic()
                    if now >= next_control:
                        self._renew_lease()
                        self._kill_overdue()
                        next_control = now + self.settings.control_seconds
                    if now >= next_grow and not self._cancelling:
                        self._sync_workers()
                        next_grow = now + self.settings.grow_seconds
                    # One transaction per turn: the results that came in, the epochs polled, the
                    # trials bred for the workers those results freed. Nothing waits inside it.
                    with self.store.batch():
                        self._take_results(ready, progress)
                        self._poll_progress(progress)
                        outgoing = [] if self._cancelling else self._dispatch()
                    self._send(outgoing, progress)
                    if not self._busy and (self._cancelling or self.tally.done):
                        break
                    ready = self._wait_for_results()
            except Exception as err:  # a crash: the campaign says failed, with why, and resumes
                if not self._lost_lease:
                    self._stop_everything("failed", f"the coordinator failed: {type(err).__name__}: {err}")
                raise
            except BaseException:  # the second Ctrl-C: no time for SQL writes beyond letting go
                if not self._lost_lease:
                    lifecycle.abandon(self.store, self.campaign_id, self.lease)
                raise
            finally:
                progress.close()
        return self._conclude(time.monotonic() - started)

    def _stop_everything(self, status: str, error: str) -> None:
        """End the campaign now, whatever runs: its trials out on workers and queued are recorded
        cancelled (each runs again, as its next attempt, when the campaign is resumed), and the
        campaign is released with `status`. Late results of those trials are ignored (their attempt
        is finished); the workers are killed with the pool. If SQL itself is what failed, the
        campaign is only let go, so `evolver resume` takes it over at once."""
        try:
            epochs_done = {b.trial.number: len(b.epochs) for b in self._busy.values()}
            with self.store.batch():  # SQL's view, not the loop's: a crash may have left a turn half done
                for trial in self.store.trials(self.campaign_id, statuses=("pending", "running")):
                    if self.store.finish_trial(self.campaign_id, trial.number, trial.attempt, "cancelled",
                                               metrics={}, fitness=None, epochs_done=epochs_done.get(trial.number, 0),
                                               error=error):
                        self.tally.finish(dataclasses.replace(trial, status="cancelled"))
            self._busy.clear()
            self._queue.clear()
            lifecycle.release(self.store, self.campaign_id, self.lease, status, error=error)
        except Exception:  # noqa: BLE001 -- the database is what failed: let go without an ending
            log.exception("campaign %d: could not record how it ended; letting go of it", self.campaign_id)
            lifecycle.abandon(self.store, self.campaign_id, self.lease)

    def _export_winner(self) -> None:
        """The completed campaign's best weights to the formats it asks for, parity-checked and
        recorded as artefacts. A failed export is logged; the campaign stays completed."""
        if not self.spec.exports or self.spec.trainer != "yolo":
            return
        from evolver.winner_export import WinnerExportError, export_winner

        if "engine" in self.spec.exports:
            self.pool.shutdown()  # the workers hold the GPUs an engine build needs
        try:
            exported = export_winner(self.store, self.campaign_id)
            log.info("campaign %d: winner exported: %s", self.campaign_id, ", ".join(a.name for a in exported))
        except WinnerExportError as err:
            log.warning("campaign %d: exporting the winner failed: %s", self.campaign_id, err)
        except Exception:  # noqa: BLE001 -- an export problem must not turn a finished campaign into a crash
            log.exception("campaign %d: exporting the winner failed", self.campaign_id)

    def _conclude(self, seconds: float) -> CampaignOutcome:
        if self._lost_lease:
            status = "taken over"  # another coordinator runs it now: nothing more to write
        elif self._interrupted:
            status = "cancelled"
            self._stop_everything(status, f"interrupted by {self._interrupted}; `evolver resume {self.campaign_id}` "
                                          f"continues it")
        elif self._cancelling:
            for trial in self._queue:
                if self.store.finish_trial(self.campaign_id, trial.number, trial.attempt, "cancelled", metrics={},
                                           fitness=None, epochs_done=0, error="campaign cancelled before it ran"):
                    self.tally.finish(dataclasses.replace(trial, status="cancelled"))
            status = "cancelled"
            lifecycle.release(self.store, self.campaign_id, self.lease, status)
        elif self.tally.counts["completed"] == 0:
            status = "failed"
            lifecycle.release(self.store, self.campaign_id, self.lease, status, error="no trial completed")
        else:
            status = "completed"
            lifecycle.release(self.store, self.campaign_id, self.lease, status)
            self._export_winner()
        best, counts = self.tally.best, self.tally.counts
        return CampaignOutcome(
            campaign_id=self.campaign_id, status=status, completed=counts["completed"],
            failed=counts["failed"], pruned=counts["pruned"], cancelled=counts["cancelled"],
            best_trial=None if best is None else best.number, best_fitness=None if best is None else best.fitness,
            seconds=seconds, interrupted=self._interrupted,
        )


def run_campaign(store: Store, campaign_id: int, settings: CoordinatorSettings = CoordinatorSettings(),
                 trials_per_gpu: int | None = None) -> CampaignOutcome:
    """Run a stored campaign from this process on the Ray it is connected to: its workers are
    started for it and shut down after (the CLI's `evolver run` and the API's in-process launcher).
    `trials_per_gpu` overrides the spec's for this run only (`--trials-per-gpu`: resuming with
    fewer trials per GPU after one ran out of memory); the stored spec is left as submitted."""
    from workers import build_trainer

    spec = CampaignSpec.model_validate(store.campaign(campaign_id).spec)
    pool = WorkerPool(build_trainer(spec.trainer, spec.dry_run_seconds), cpu_workers=spec.cpu_workers,
                      trials_per_gpu=spec.trials_per_gpu if trials_per_gpu is None else trials_per_gpu)
    try:
        return Coordinator(store, campaign_id, pool, settings).run()
    finally:
        pool.shutdown()
