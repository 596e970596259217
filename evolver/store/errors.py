"""Errors the store raises, so callers can tell "no such thing" from "not allowed"."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class CampaignNotFound(StoreError, KeyError):
    """The campaign id names no campaign."""

    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"campaign {campaign_id} not found")
        self.campaign_id = campaign_id

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class TrialNotFound(StoreError, KeyError):
    """The (campaign, number) pair names no trial."""

    def __init__(self, campaign_id: int, number: int) -> None:
        super().__init__(f"trial {number} of campaign {campaign_id} not found")
        self.campaign_id = campaign_id
        self.number = number

    def __str__(self) -> str:
        return str(self.args[0])


class TrialAlreadyFinished(StoreError, ValueError):
    """An operation would change a finished trial, which the storage contract forbids."""

    def __init__(self, campaign_id: int, number: int, status: str) -> None:
        super().__init__(f"trial {number} of campaign {campaign_id} is already {status}; finished trials are never modified")
        self.campaign_id = campaign_id
        self.number = number
        self.status = status


class InvalidInput(StoreError, ValueError, TypeError):
    """An argument the store refuses (bad status, non-numeric value, ...); raised before writing.

    It is a ValueError (the usual catch for bad input) and a TypeError (what a wrong type raises),
    so callers may catch either.
    """
