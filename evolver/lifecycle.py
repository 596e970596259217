"""A campaign's life, in one place: every change of its status is one compare-and-set in SQL.

    queued ──claim──▶ running (held) ──release──▶ completed | failed | cancelled
       ▲                 │   ▲                                │
       │               cancel └─claim, once the lease lapsed  │
       │                 ▼     (the holder died)              │
       └──────reopen──── cancelled | failed | completed ◀─────┘
                         running whose lease lapsed (a crashed coordinator)

- A coordinator *claims* a campaign before it runs it and holds a lease (holder, expiry) that it
  renews while it runs. Only a campaign nobody holds (or whose lease lapsed) can be claimed, so
  exactly one coordinator runs it, whoever started it (CLI, API, `ray job submit`): a second one
  is refused with the holder's name.
- *Cancel* marks a queued or running campaign cancelled; its holder sees that when it renews,
  stops its trials and releases.
- *Reopen* (resume) puts an ended campaign, or one whose coordinator died, back to queued with no
  job; whoever runs it next claims it. Two reopens at once: one wins, the other is told it is
  queued. The coordinator that claims it re-runs every interrupted or cancelled trial as its next
  attempt, so a resumed campaign reaches the trial count it asked for.
- *Release* writes the final status only while the campaign still says running or cancelled: a
  campaign reopened meanwhile stays queued for its next coordinator.
- A launcher whose job ended records that only if the campaign still names that job and nobody
  holds it (`job_ended`): an old job's end never overwrites a newer run.

The CLI, the API routes, the launchers and the coordinator call these functions; none of them
sets a campaign status by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

from evolver.store import CampaignRecord, Store

log = logging.getLogger(__name__)

ENDED = ("completed", "failed", "cancelled")
ALIVE = ("queued", "running")


class LifecycleError(ValueError):
    """A transition that the campaign's current state does not allow (the message says why)."""


class CampaignBusy(LifecycleError):
    """Another coordinator holds the campaign (or it is queued for one)."""


@dataclass(frozen=True)
class Lease:
    """Who holds a campaign and for how long each renewal counts."""

    seconds: float = 30.0
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")


def _held_by(campaign: CampaignRecord) -> str:
    until = campaign.lease_expires_at.isoformat(timespec="seconds") if campaign.lease_expires_at else "?"
    return f"{campaign.holder} (lease until {until})"


def claim(store: Store, campaign_id: int, lease: Lease, *, wait_seconds: float = 0.0) -> CampaignRecord:
    """Take the campaign for this coordinator: status running, held by `lease.holder`.

    Refused (`CampaignBusy`) while another live coordinator holds it; an ended campaign must be
    reopened first (`LifecycleError`). A campaign just reopened may still be held by the
    coordinator that is stopping it: then the claim waits for that release up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if store.transition_campaign(campaign_id, from_statuses=ALIVE, unheld=True, status="running",
                                     holder=lease.holder, lease_seconds=lease.seconds):
            return store.campaign(campaign_id)
        campaign = store.campaign(campaign_id)
        if campaign.status in ENDED:
            raise LifecycleError(f"campaign {campaign_id} is {campaign.status}; "
                                 f"`evolver resume {campaign_id}` (or POST /campaigns/{campaign_id}/resume) continues it")
        if campaign.status == "running" or time.monotonic() >= deadline:
            raise CampaignBusy(f"campaign {campaign_id} is already run by {_held_by(campaign)}")
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def renew(store: Store, campaign_id: int, lease: Lease) -> str | None:
    """Extend the lease; returns the campaign's status, or None if this coordinator lost it."""
    return store.renew_campaign_lease(campaign_id, lease.holder, lease.seconds)


def release(store: Store, campaign_id: int, lease: Lease, status: str, error: str | None = None) -> None:
    """The holder's last word: the final status (unless the campaign was reopened meanwhile)."""
    if status not in ENDED:
        raise ValueError(f"a coordinator ends a campaign completed, failed or cancelled, not {status!r}")
    if not store.transition_campaign(campaign_id, from_statuses=("running", "cancelled"), holder_is=lease.holder,
                                     status=status, error=error, holder=None):
        store.transition_campaign(campaign_id, from_statuses=None, holder_is=lease.holder, holder=None)


def cancel(store: Store, campaign_id: int) -> CampaignRecord:
    """Mark a queued or running campaign cancelled (its coordinator stops within seconds).
    Cancelling a cancelled campaign changes nothing; a completed or failed one is refused."""
    if not store.transition_campaign(campaign_id, from_statuses=ALIVE, status="cancelled"):
        campaign = store.campaign(campaign_id)
        if campaign.status != "cancelled":
            raise LifecycleError(f"campaign {campaign_id} is already {campaign.status}")
    return store.campaign(campaign_id)


def reopen(store: Store, campaign_id: int, *, wait_for_lapse: float = 0.0) -> CampaignRecord:
    """Resume: an ended campaign, or one whose coordinator died (lease lapsed), back to queued
    with no job and no error. Refused (`CampaignBusy`) while it is queued or held by a live
    coordinator. `wait_for_lapse`: a lease that lapses within that many seconds is waited out
    (its coordinator may be gone without a word: SIGKILL, a lost node); a coordinator that renews
    its lease meanwhile is alive, and the resume is refused."""
    waited = False
    while True:
        if store.transition_campaign(campaign_id, from_statuses=ENDED, status="queued", job_id=None, error=None):
            return store.campaign(campaign_id)
        if store.transition_campaign(campaign_id, from_statuses=("running",), unheld=True, status="queued",
                                     job_id=None, error=None, holder=None):
            return store.campaign(campaign_id)
        campaign = store.campaign(campaign_id)
        if campaign.status == "queued":
            raise CampaignBusy(f"campaign {campaign_id} is already queued (job {campaign.job_id or 'none yet'})")
        left = store.lease_seconds_left(campaign_id)
        if campaign.status != "running" or left is None:
            continue  # it changed between the two steps: try again
        if waited or left > wait_for_lapse:
            raise CampaignBusy(
                f"campaign {campaign_id} is running, held by {_held_by(campaign)}{'' if waited else f', {left:.0f}s from now'}"
                f"{': its coordinator renewed the lease, so it is alive' if waited else ''}; "
                f"`evolver cancel {campaign_id}` stops it; a coordinator that is gone loses the campaign when its lease "
                "lapses, and resume works then")
        log.info("campaign %d is held by %s: waiting %.0fs for the lease to lapse (its coordinator may be gone)",
                 campaign_id, _held_by(campaign), left)
        time.sleep(max(0.0, left) + 0.5)
        waited = True


def set_job(store: Store, campaign_id: int, job_id: str | None) -> None:
    """Record the job just started for the campaign (it may have run and ended already)."""
    store.transition_campaign(campaign_id, from_statuses=None, job_id=job_id)


def job_ended(store: Store, campaign_id: int, job_id: str, reason: str) -> bool:
    """A launcher saw `job_id` end: if the campaign still names that job and no live coordinator
    holds it, nobody runs it any more: failed, with the reason."""
    return store.transition_campaign(campaign_id, from_statuses=ALIVE, job_is=job_id, unheld=True,
                                     status="failed", error=reason, holder=None)


def launch_failed(store: Store, campaign_id: int, reason: str) -> bool:
    """The job could not even be started."""
    return store.transition_campaign(campaign_id, from_statuses=("queued",), unheld=True,
                                     status="failed", error=reason)


def abandon(store: Store, campaign_id: int, lease: Lease) -> None:
    """Let go without an ending (Ctrl-C, a crash being handled): the campaign stays running but
    unheld, so the next `evolver resume` / `evolver run --campaign N` takes it over at once."""
    store.transition_campaign(campaign_id, from_statuses=None, holder_is=lease.holder, holder=None)
