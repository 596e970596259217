"""What the coordinator benchmarks record: a `CoordinatorStats` sink that keeps every figure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordedStats:
    busy: list[float] = field(default_factory=list)  # per trial: seconds it held its worker
    overheads: list[float] = field(default_factory=list)  # per trial: seconds outside training + validation
    waiting: float = 0.0  # seconds the loop waited for results

    def trial_recorded(self, busy_seconds: float, overhead_seconds: float) -> None:
        self.busy.append(busy_seconds)
        self.overheads.append(overhead_seconds)

    def waited(self, seconds: float) -> None:
        self.waiting += seconds
