"""Submitting to a head whose job agent has not registered yet: Ray answers 500 "No available agent
to submit job, please try again later" for a moment after its Jobs API is up. The launcher tries
again within a bound; any other refusal fails at once. The Jobs client here is a stand-in that
answers as Ray's does, because the race cannot be produced on demand with a real head."""

from __future__ import annotations

import pytest

from api.launcher import LaunchError, RayJobLauncher

NO_AGENT = "Request failed with status code 500: No available agent to submit job, please try again later.."


class _JobsClient:
    def __init__(self, refusals: list[str]) -> None:
        self.refusals = list(refusals)
        self.submissions = 0

    def submit_job(self, **_kwargs) -> str:
        self.submissions += 1
        if self.refusals:
            raise RuntimeError(self.refusals.pop(0))
        return "raysubmit_ok"


def _launcher(client: _JobsClient, agent_wait_seconds: float) -> RayJobLauncher:
    launcher = RayJobLauncher("sqlite:///unused.db", agent_wait_seconds=agent_wait_seconds, watch_seconds=3600)
    launcher._client = client
    return launcher


def test_submit_waits_for_the_job_agent_to_register():
    client = _JobsClient([NO_AGENT, NO_AGENT])
    launcher = _launcher(client, agent_wait_seconds=10)
    try:
        assert launcher.submit(1) == "raysubmit_ok"
        assert client.submissions == 3
    finally:
        launcher.close()


def test_submit_gives_up_on_a_missing_agent_after_its_bound():
    client = _JobsClient([NO_AGENT] * 100)
    launcher = _launcher(client, agent_wait_seconds=0.6)
    try:
        with pytest.raises(LaunchError, match="No available agent"):
            launcher.submit(1)
        assert 2 <= client.submissions < 10
    finally:
        launcher.close()


def test_other_refusals_fail_at_once():
    client = _JobsClient(["Request failed with status code 401: Unauthorized"])
    launcher = _launcher(client, agent_wait_seconds=10)
    try:
        with pytest.raises(LaunchError, match="401"):
            launcher.submit(1)
        assert client.submissions == 1
    finally:
        launcher.close()
