"""Input checks run before anything is written, so bad input fails with a message naming it.

SQL would reject some of this too, but half-way through a transaction and with a driver's
message; other cases (NaN in JSON, a float for an int) it would silently accept on SQLite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from numbers import Integral, Real

from .errors import InvalidInput
from .records import CAMPAIGN_STATUSES, FINISHED_TRIAL_STATUSES, TRIAL_STATUSES

NAME_LIMIT = 64  # length of trial_params.name / trial_metrics.name


# Each check first tries the exact built-in type (`type(v) is float`): the coordinator checks about
# a hundred values per trial, and the general test (isinstance against numbers.Real, an ABC) costs
# ten times as much. Anything else still goes through the general test.


def integer(value: object, what: str, minimum: int | None = None) -> int:
    if type(value) is int and (minimum is None or value >= minimum):
        return value
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidInput(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, got {value}")
    return value


def finite(value: object, what: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}")
    return float(value)


def positive_number(value: object, what: str) -> float:
    number = finite(value, what)
    if number <= 0:
        raise InvalidInput(f"{what} must be positive, got {number}")
    return number


def measured(value: object, what: str) -> float | None:
    """A measured value: a number; NaN / inf become None (SQL NULL, JSON null).

    A diverged training legitimately reports NaN; SQLite cannot store NaN (it turns it into NULL)
    and PostgreSQL's JSON rejects it, so both backends store "no finite value" the same way.
    """
    if value is None:
        return None
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInput(f"{what} must be a number, got {value!r}")
    value = float(value)
    return value if math.isfinite(value) else None


def text(value: object, what: str, limit: int | None = None) -> str:
    if type(value) is str and value and (limit is None or len(value) <= limit):
        return value
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters: {value!r}")
    return value


def optional_text(value: object, what: str, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string or None, got {value!r}")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters: {value!r}")
    return value


def hyperparameters(hyp: object, what: str = "hyp") -> dict[str, float]:
    if not isinstance(hyp, (dict, Mapping)) or not hyp:
        raise InvalidInput(f"{what} must be a non-empty mapping of name -> number, got {hyp!r}")
    return {text(name, f"{what} name", NAME_LIMIT): finite(value, f"{what}[{name!r}]") for name, value in hyp.items()}


def metrics(values: object, what: str = "metrics") -> dict[str, float | None]:
    if not isinstance(values, (dict, Mapping)):
        raise InvalidInput(f"{what} must be a mapping of name -> number, got {values!r}")
    return {text(name, f"{what} name", NAME_LIMIT): measured(value, f"{what}[{name!r}]")
            for name, value in values.items()}


def json_document(value: object, what: str) -> dict:
    """A deep copy of a JSON object; refuses what JSON cannot hold faithfully (NaN, sets, objects)."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{what} is not JSON-serialisable: {error}") from None


def one_of(value: object, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def trial_status(status: object) -> str:
    if status not in TRIAL_STATUSES:
        raise InvalidInput(f"unknown trial status {status!r}; expected one of {', '.join(TRIAL_STATUSES)}")
    return str(status)


def finished_status(status: object) -> str:
    trial_status(status)
    if status not in FINISHED_TRIAL_STATUSES:
        raise InvalidInput(f"a trial cannot finish as {status!r}; expected one of {', '.join(FINISHED_TRIAL_STATUSES)}")
    return str(status)


def trial_statuses(statuses: Collection[str]) -> tuple[str, ...]:
    if isinstance(statuses, str):
        raise InvalidInput(f"statuses must be a collection of status strings, not the string {statuses!r}")
    return tuple(trial_status(status) for status in statuses)


def campaign_status(status: object) -> str:
    if status not in CAMPAIGN_STATUSES:
        raise InvalidInput(f"unknown campaign status {status!r}; expected one of {', '.join(CAMPAIGN_STATUSES)}")
    return str(status)


def parents(numbers: object) -> tuple[int, ...]:
    if isinstance(numbers, (str, bytes)) or not isinstance(numbers, Sequence):
        raise InvalidInput(f"parents must be a sequence of trial numbers, got {numbers!r}")
    return tuple(integer(number, "parent trial number") for number in numbers)


def timestamp(value: datetime | float | None, what: str) -> datetime | None:
    """A UTC datetime from an aware datetime or a `time.time()` float (what workers report)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(f"{what} must be timezone-aware, got {value!r}")
        return value.astimezone(UTC)
    return datetime.fromtimestamp(finite(value, what), UTC)
