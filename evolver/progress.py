"""Live terminal view of a campaign: one bar over all trials, its postfix naming the generation,
the best fitness so far and what every busy worker is doing (trial number and epoch)."""

from __future__ import annotations

from tqdm import tqdm


class CampaignProgress:
    def __init__(self, name: str, total: int, done: int, enabled: bool = True):
        self._bar = tqdm(total=total, initial=done, desc=f"evolve {name}", unit="trial",
                         disable=not enabled, dynamic_ncols=True)
        self._workers: dict[str, str] = {}
        self._generation = ""
        self._best: float | None = None

    def trial_started(self, worker: str, number: int, epochs: int) -> None:
        self._workers[worker] = f"#{number} e0/{epochs}"
        self._refresh()

    def epoch_done(self, worker: str, number: int, epoch: int, epochs: int) -> None:
        self._workers[worker] = f"#{number} e{epoch + 1}/{epochs}"
        self._refresh()

    def trial_finished(self, worker: str, status: str, best: float | None, generation: str) -> None:
        self._workers.pop(worker, None)
        self._best, self._generation = best, generation
        self._bar.update(1)
        if status != "completed":
            self._bar.write(f"trial on {worker}: {status}")
        self._refresh()

    def _refresh(self) -> None:
        best = "-" if self._best is None else f"{self._best:.4f}"
        busy = " ".join(f"{w}:{state}" for w, state in sorted(self._workers.items()))
        self._bar.set_postfix_str(f"gen {self._generation} best {best} | {busy}", refresh=True)

    def close(self) -> None:
        self._bar.close()
