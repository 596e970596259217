"""What the real campaigns of the ledger show: best fitness against worker-seconds (table, and a
PNG where a path is given), the worker-seconds each configuration needs to reach the classic
loop's final best, and the held-out check of the winners against the base hyperparameters
(mean +- standard error)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.search_campaigns import CONFIGS, read_ledger

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def best_curve(trials: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(worker-seconds used when each completed trial ended, best fitness so far then)."""
    spans = [(t["start_s"], t["end_s"]) for t in trials if t["end_s"] is not None]
    done = sorted((t for t in trials if t["status"] == "completed" and t["fitness"] is not None),
                  key=lambda t: t["end_s"])
    used = np.array([sum(max(0.0, min(end, t["end_s"]) - start) for start, end in spans) for t in done])
    return used, np.maximum.accumulate(np.array([t["fitness"] for t in done]))


def best_at(curve: tuple[np.ndarray, np.ndarray], seconds: float) -> float:
    used, best = curve
    reached = best[used <= seconds + 1e-9]
    return float(reached[-1]) if len(reached) else math.nan


def seconds_to(curve: tuple[np.ndarray, np.ndarray], target: float) -> float:
    used, best = curve
    hit = np.nonzero(best >= target - 1e-12)[0]
    return float(used[hit[0]]) if len(hit) else math.inf


def mean_se(values) -> tuple[float, float]:
    values = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def campaigns(ledger: Path) -> dict[str, dict[int, list[dict]]]:
    grouped: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in read_ledger(ledger):
        if row["kind"] == "trial":
            grouped[row["config"]][row["seed"]].append(row)
    return {c: dict(grouped[c]) for c in CONFIGS if c in grouped}


def report(ledger: Path, plot: Path | None) -> dict:
    """Print the tables; returns the figures the README quotes."""
    grouped = campaigns(ledger)
    budget = max(r["budget"] for seeds in grouped.values() for trials in seeds.values() for r in trials)
    curves = {c: {s: best_curve(t) for s, t in seeds.items()} for c, seeds in grouped.items()}
    print(f"\nreal campaigns: demo fine-tune task, budget {budget:.0f} worker-seconds each (1 worker = 1 core)")
    completed = [t for seeds in grouped.values() for ts in seeds.values() for t in ts if t["status"] == "completed"]
    print(f"{len(completed)} completed trials, median wall time "
          f"{statistics.median(t['end_s'] - t['start_s'] for t in completed):.1f} s")
    header = " ".join(f"{f'best@{int(f * 100)}%':>15s}" for f in FRACTIONS)
    print(f"{'config':18s} {'seeds':>5s} {'trials':>7s} {'pruned':>6s} {header}")
    for config, seeds in grouped.items():
        trials = [t for ts in seeds.values() for t in ts]
        cells = []
        for f in FRACTIONS:
            m, se = mean_se(best_at(curves[config][s], f * budget) for s in seeds)
            cells.append(f"{m:8.4f}+-{se:.4f}")
        print(f"{config:18s} {len(seeds):5d} {len(trials) / len(seeds):7.1f} "
              f"{sum(t['status'] == 'pruned' for t in trials) / len(seeds):6.1f} {' '.join(cells)}")
    figures: dict = {}
    if "classic" in curves:
        target = float(np.median([best_at(c, budget) for c in curves["classic"].values()]))
        figures["classic_final_best"] = target
        print(f"\nworker-seconds to reach the classic loop's final best ({target:.4f}, median of its seeds), "
              f"per seed, as a share of the budget ('-': not within it)")
        for config in curves:
            shares = [seconds_to(c, target) / budget for c in curves[config].values()]
            cells = " ".join("     -" if not math.isfinite(x) else f"{x:6.2f}" for x in shares)
            median = float(np.median(shares))
            figures[f"share_{config}"] = median
            print(f"{config:18s} {cells}   median {'not reached' if not math.isfinite(median) else f'{median:.2f}'}")
    figures.update(_holdout(ledger))
    if plot is not None:
        _plot(curves, budget, plot)
        print(f"\nplot: {plot}")
    return figures


def _holdout(ledger: Path) -> dict:
    rows = [r for r in read_ledger(ledger) if r["kind"] == "holdout"]
    if not rows:
        return {}
    base = [r["fitness"] for r in rows if r["role"] == "base"]
    b, b_se = mean_se(base)
    print("\nheld-out split (256 images no trial saw), retrained with fresh seeds; fitness mean +- standard error")
    print(f"{'base hyperparameters':26s} {len(base):3d} runs  {b:.4f} +- {b_se:.4f}")
    figures = {"holdout_base": (b, b_se)}
    for config in CONFIGS:
        # One value per campaign (its winner's retrainings averaged): the campaigns are the samples.
        per_campaign = defaultdict(list)
        for r in rows:
            if r["role"] == "winner" and r["config"] == config:
                per_campaign[r["seed"]].append(r["fitness"])
        if not per_campaign:
            continue
        m, se = mean_se(np.mean(v) for v in per_campaign.values())
        diff_se = math.sqrt(se ** 2 + b_se ** 2)
        z = (m - b) / diff_se if diff_se > 0 else math.nan
        figures[f"holdout_{config}"] = (m, se, z)
        print(f"{config + ' winners':26s} {len(per_campaign):3d} camps {m:.4f} +- {se:.4f}   "
              f"vs base {m - b:+.4f} ({z:+.1f} SE)")
    winners = defaultdict(list)
    for r in rows:
        if r["role"] == "winner":
            winners[(r["config"], r["seed"])].append(r["fitness"])
    m, se = mean_se(np.mean(v) for v in winners.values())
    z = (m - b) / math.sqrt(se ** 2 + b_se ** 2)
    figures["holdout_all"] = (m, se, z)
    print(f"{'all winners':26s} {len(winners):3d} camps {m:.4f} +- {se:.4f}   vs base {m - b:+.4f} ({z:+.1f} SE)")
    return figures


def _plot(curves: dict, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget, 200)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for config, seeds in curves.items():
        lines = np.array([[best_at(c, x) for x in grid] for c in seeds.values()])
        mean = lines.mean(axis=0)  # drawn from where every seed has a completed trial
        ax.plot(grid, mean, label=f"{config} ({len(seeds)} seeds)", drawstyle="steps-post")
    ax.set_xlabel("worker-seconds (1 worker = 1 CPU core)")
    ax.set_ylabel("best fitness so far (mean over seeds)")
    ax.set_title("Demo fine-tune task: best fitness against compute")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
