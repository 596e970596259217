"""What the real campaigns of the ledger show: best fitness against worker-seconds (table, and a
PNG where a path is given), the worker-seconds each configuration needs to reach the classic
loop's final best, and the held-out check of the winners against the base hyperparameters
(mean +- standard error)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.search_campaigns import CONFIGS, read_ledger

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
CAMPAIGN = ["config", "seed"]  # the columns that name a campaign
TRIAL_COLUMNS = [*CAMPAIGN, "budget", "status", "fitness", "epochs", "start_s", "end_s"]


def ledger_trials(ledger: Path) -> pd.DataFrame:
    """The ledger's trials of the configurations in CONFIGS, in CONFIGS' order, each configuration's
    in the ledger's order: grouped by CAMPAIGN without sorting, the campaigns come configuration by
    configuration, seeds in the order they first appear."""
    trials = read_ledger(ledger, "trial", TRIAL_COLUMNS)
    trials = trials[trials["config"].isin(CONFIGS)]
    return trials.sort_values("config", key=lambda names: names.map(list(CONFIGS).index), kind="stable")


def best_curve(trials: pd.DataFrame) -> pd.Series:
    """One campaign's best fitness so far when each completed trial ended, indexed by the
    worker-seconds used by then (every trial's time up to that moment, summed)."""
    spans = trials.dropna(subset=["end_s"])
    done = trials[(trials["status"] == "completed") & trials["fitness"].notna()].sort_values("end_s", kind="stable")
    used = [(spans["end_s"].clip(upper=end) - spans["start_s"]).clip(lower=0.0).sum() for end in done["end_s"]]
    return pd.Series(done["fitness"].cummax().to_numpy(), index=pd.Index(used, dtype=float, name="worker-seconds"))


def best_at(curve: pd.Series, seconds):
    """The best fitness within `seconds` worker-seconds (nan before the first completed trial);
    `seconds` a number or an array of them."""
    return curve.asof(seconds + 1e-9) if len(curve) else math.nan


def seconds_to(curve: pd.Series, target: float) -> float:
    """The worker-seconds used when the best fitness first reached `target` (inf: never)."""
    reached = curve.index[curve >= target - 1e-12]
    return float(reached[0]) if len(reached) else math.inf


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the finite values (nan where too few), as the tables compute them."""
    finite = pd.Series(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()), float(finite.sem())


def report(ledger: Path, plot: Path | None) -> dict:
    """Print the tables; returns the figures the README quotes."""
    trials = ledger_trials(ledger)
    if trials.empty:
        print(f"\nreal campaigns: none in {ledger} yet (the `campaigns` step runs them)")
        return {}
    budget = trials["budget"].max()
    campaigns = trials.groupby(CAMPAIGN, sort=False)
    curves = pd.Series({key: best_curve(campaign) for key, campaign in campaigns})
    curves.index.names = CAMPAIGN
    completed = trials[trials["status"] == "completed"]
    print(f"\nreal campaigns: demo fine-tune task, budget {budget:.0f} worker-seconds each (1 worker = 1 core)")
    print(f"{len(completed)} completed trials, median wall time {(completed['end_s'] - completed['start_s']).median():.1f} s")
    per_campaign = pd.DataFrame({
        "trials": campaigns.size(),
        "pruned": campaigns["status"].agg(lambda status: (status == "pruned").sum()),
        **{f"best@{int(f * 100)}%": curves.map(lambda curve: best_at(curve, f * budget)) for f in FRACTIONS}})
    by_config = per_campaign.groupby(level="config", sort=False)
    table = pd.DataFrame({"seeds": by_config.size(), "trials": by_config["trials"].mean(),
                          "pruned": by_config["pruned"].mean()})
    for f in FRACTIONS:
        best = by_config[f"best@{int(f * 100)}%"].agg(["mean", "sem"])
        table[f"best@{int(f * 100)}%"] = [f"{m:.4f}+-{se:.4f}" for m, se in best.itertuples(index=False)]
    table.index.name, table.columns.name = None, "config"
    print(table.to_string(float_format="{:.1f}".format))
    figures: dict = {}
    if "classic" in curves.index.get_level_values("config"):
        target = float(curves["classic"].map(lambda curve: best_at(curve, budget)).median())
        figures["classic_final_best"] = target
        print(f"\nworker-seconds to reach the classic loop's final best ({target:.4f}, median of its seeds), "
              f"per seed, as a share of the budget ('-': not within it)")
        shares = curves.map(lambda curve: seconds_to(curve, target) / budget)
        medians = shares.groupby(level="config", sort=False).median()
        figures.update({f"share_{config}": float(median) for config, median in medians.items()})
        table = shares.unstack("seed").reindex(medians.index).rename(columns=lambda seed: f"seed {seed}")
        table = table.map(lambda x: "" if math.isnan(x) else "-" if math.isinf(x) else f"{x:.2f}")
        table["median"] = medians.map(lambda x: "not reached" if math.isinf(x) else f"{x:.2f}")
        table.index.name, table.columns.name = None, "config"
        print(table.to_string())
    figures.update(_holdout(ledger))
    if plot is not None:
        _plot(curves, budget, plot)
        print(f"\nplot: {plot}")
    return figures


def _holdout(ledger: Path) -> dict:
    rows = read_ledger(ledger, "holdout", ["role", *CAMPAIGN, "fitness"])
    if rows.empty:
        return {}
    # One value per campaign (its winner's retrainings averaged): the campaigns are the samples.
    winners = rows[rows["role"] == "winner"].groupby(CAMPAIGN, sort=False)["fitness"].mean()
    samples = {"base": ("base hyperparameters", "runs", rows.loc[rows["role"] == "base", "fitness"])}
    samples.update({config: (f"{config} winners", "campaigns", winners[config])
                    for config in CONFIGS if config in winners.index.get_level_values("config")})
    samples["all"] = ("all winners", "campaigns", winners)
    stats = pd.DataFrame({key: values.agg(["count", "mean", "sem"]) for key, (_, _, values) in samples.items()}).T
    b, b_se = stats.loc["base", "mean"], stats.loc["base", "sem"]
    stats["vs base"] = stats["mean"] - b
    stats["z"] = stats["vs base"] / np.sqrt(stats["sem"] ** 2 + b_se ** 2)
    figures = {"holdout_base": (b, b_se)}
    figures.update({f"holdout_{key}": (row["mean"], row["sem"], row["z"]) for key, row in stats.iloc[1:].iterrows()})
    print("\nheld-out split (256 images no trial saw), retrained with fresh seeds; fitness mean +- standard error")
    columns = {
        "retrained": [f"{count:.0f} {unit}" for count, (_, unit, _) in zip(stats["count"], samples.values())],
        "fitness": [f"{m:.4f} +- {se:.4f}" for m, se in zip(stats["mean"], stats["sem"])],
        "vs base": [""] + [f"{d:+.4f} ({z:+.1f} SE)" for d, z in zip(stats["vs base"].iloc[1:], stats["z"].iloc[1:])]}
    if "classic" in stats.index:  # each configuration's winners against the classic loop's (campaigns as samples)
        c, c_se = stats.loc["classic", "mean"], stats.loc["classic", "sem"]
        versus = stats["mean"] - c
        z_classic = versus / np.sqrt(stats["sem"] ** 2 + c_se ** 2)
        compared = [key not in ("base", "classic", "all") for key in stats.index]
        columns["vs classic"] = [f"{d:+.4f} ({z:+.1f} SE)" if shown else ""
                                 for d, z, shown in zip(versus, z_classic, compared)]
        figures.update({f"holdout_{key}_vs_classic": (d, z)
                        for key, d, z, shown in zip(stats.index, versus, z_classic, compared) if shown})
    table = pd.DataFrame(columns, index=[label for label, _, _ in samples.values()])
    print(table.to_string())
    return figures


def _plot(curves: pd.Series, budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget, 200)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for config, seeds in curves.groupby(level="config", sort=False):
        lines = pd.DataFrame({key: np.asarray(best_at(curve, grid)) for key, curve in seeds.items()}, index=grid)
        mean = lines.mean(axis=1, skipna=False)  # drawn from where every seed has a completed trial
        ax.plot(grid, mean, label=f"{config} ({len(seeds)} seeds)", drawstyle="steps-post")
    ax.set_xlabel("worker-seconds (1 worker = 1 CPU core)")
    ax.set_ylabel("best fitness so far (mean over seeds)")
    ax.set_title("Demo fine-tune task: best fitness against compute")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
