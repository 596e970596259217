"""One step's record: its status, figures, notes and error, saved to JSON after every change.

A step runs in its own process; the orchestrator reads the record back when the process ends,
and also when it had to kill it (time limit), so every figure measured before that survives.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("running", "ok", "failed", "timeout", "skipped", "not_applicable")


@dataclass
class StepRecord:
    step: str
    path: Path | None = None  # where it is saved; None: kept in memory only
    status: str = "running"
    seconds: float | None = None  # wall time, set by the orchestrator
    limit_seconds: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the traceback, or why the process gave none
    reason: str | None = None  # why it was skipped, not applicable or stopped

    def figure(self, name: str, value: Any) -> Any:
        self.figures[name] = json_safe(value)
        self.save()
        return value

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.save()

    def finish(self, status: str, error: str | None = None, reason: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown step status {status!r} (expected one of {', '.join(STATUSES)})")
        self.status = status
        self.error = error if error is not None else self.error
        self.reason = reason if reason is not None else self.reason
        self.save()

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("path")
        return row

    def save(self) -> None:
        if self.path is None:
            return
        staging = self.path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        os.replace(staging, self.path)  # a reader never sees half a file

    @classmethod
    def load(cls, step: str, path: Path) -> "StepRecord | None":
        """The record a step process saved, or None if it saved none (or an unreadable one)."""
        try:
            row = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(row, dict) or row.get("step") != step:
            return None
        known = {name: row[name] for name in ("status", "seconds", "limit_seconds", "figures", "notes", "error", "reason")
                 if name in row}
        return cls(step=step, path=Path(path), **known)


def json_safe(value: Any) -> Any:
    """Plain JSON: tuples as lists, paths as text, NaN / infinity as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return json_safe(value.item())
    return str(value)
