"""A surrogate of the demo task's fitness, fitted to the real trials of the search ledger.

`benchmarks/search_campaigns.py` records every real trial (hyperparameters, per-epoch fitness).
This fits, over the genes the campaigns searched, a Gaussian process (scikit-learn: a Matern
kernel plus a white-noise term) to the final fitness of the completed trials: its mean is the
fitness a hyperparameter vector "deserves", its white-noise level the spread between two runs of
the same hyperparameters (seed noise, plus what the model cannot explain). A simulated trial
draws mean + noise, and its per-epoch curve from the real trials' mean fraction of the final fitness reached after each epoch (with
their spread); the simulation uses the final fitness only (it runs no median stopping).

Inputs are each gene's position between its limits (log position for `Gene.log_scale` genes), so
every gene weighs the same before fitting. `describe()` prints the fit's cross-validated R^2:
how much of the real variation between trials the surrogate explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.search_campaigns import read_ledger
from evolver.campaign import CampaignSpec
from evolver.space import SearchSpace


def completed_trials(ledger: Path) -> pd.DataFrame:
    trials = read_ledger(ledger, "trial", ["status", "hyp", "fitness", "epochs"])
    return trials[(trials["status"] == "completed") & trials["fitness"].notna()]


def unit_position(space: SearchSpace, hyp: dict[str, float]) -> np.ndarray:
    """Each free gene's place between its limits, 0..1 (log scale where the gene is)."""
    values = []
    for gene in space.genes:
        if not gene.free:
            continue
        x = float(hyp[gene.name])
        if gene.log_scale:
            x, lo, hi = np.log(max(x, gene.lower)), np.log(gene.lower), np.log(gene.upper)
        else:
            lo, hi = gene.lower, gene.upper
        values.append(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
    return np.array(values)


@dataclass
class FitnessSurrogate:
    space: SearchSpace
    model: object  # a fitted sklearn GaussianProcessRegressor
    noise_sd: float  # seed noise of one trial's final fitness
    epoch_fraction: np.ndarray  # mean share of the final fitness reached after each epoch
    epoch_fraction_sd: np.ndarray
    x: np.ndarray  # the real trials fitted: unit positions
    y: np.ndarray  # and final fitness

    @classmethod
    def fit(cls, ledger: Path, space: SearchSpace | None = None) -> "FitnessSurrogate":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        space = space or demo_space()
        completed = completed_trials(ledger)
        if len(completed) < 20:
            raise ValueError(f"{ledger}: {len(completed)} completed trials; the surrogate needs at least 20")
        x = np.array([unit_position(space, hyp) for hyp in completed["hyp"]])
        y = completed["fitness"].to_numpy(dtype=float)
        # One length scale for all genes: a length scale per gene (ARD) fitted a few hundred trials
        # worse in cross-validation (R^2 0.81 against 0.87 on 126 trials) and extrapolated upwards.
        kernel = ConstantKernel(1.0, (1e-3, 1e2)) * Matern(0.5, (0.05, 10.0), nu=2.5) + WhiteKernel(1e-2, (1e-6, 1.0))
        model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)
        model.fit(x, y)
        noise_sd = float(np.sqrt(model.kernel_.k2.noise_level) * model._y_train_std)
        epochs = len(completed["epochs"].iloc[0])
        curves = np.array([np.array(curve) / fitness for curve, fitness in zip(completed["epochs"], completed["fitness"])
                           if len(curve) == epochs and fitness > 0])
        return cls(space, model, noise_sd, curves.mean(axis=0), curves.std(axis=0), x, y)

    def mean(self, hyp: dict[str, float]) -> float:
        return float(self.model.predict(unit_position(self.space, hyp)[None, :])[0])

    def trial(self, hyp: dict[str, float], rng: np.random.Generator) -> tuple[float, list[float]]:
        """(final fitness, fitness after each epoch) of one simulated run of `hyp`."""
        final = self.mean(hyp) + rng.normal(0.0, self.noise_sd)
        shares = self.epoch_fraction + rng.normal(0.0, 1.0, self.epoch_fraction.shape) * self.epoch_fraction_sd
        curve = [final * float(s) for s in shares[:-1]] + [final]
        return final, curve

    def describe(self) -> str:
        """The fit's quality: 5-fold cross-validated R^2 and the noise it found."""
        from sklearn.base import clone
        from sklearn.model_selection import KFold, cross_val_predict

        x, y = self.x, self.y
        fixed = clone(self.model).set_params(kernel=self.model.kernel_, optimizer=None)
        predicted = cross_val_predict(fixed, x, y, cv=KFold(5, shuffle=True, random_state=0))
        better = y >= np.median(y)  # where searches spend their time once they learn

        def r2(mask: np.ndarray) -> float:
            return float(1 - np.sum((predicted[mask] - y[mask]) ** 2) / np.sum((y[mask] - y[mask].mean()) ** 2))

        return (f"surrogate: Gaussian process on {len(y)} real trials, {x.shape[1]} genes; 5-fold "
                f"cross-validated R^2 {r2(np.ones_like(better)):.2f} (better half of the trials: "
                f"{r2(better):.2f}); seed noise sd {self.noise_sd:.4f}; fitness {y.min():.3f}..{y.max():.3f}; "
                f"share of the final fitness after each epoch {np.round(self.epoch_fraction, 2).tolist()}")


def demo_space() -> SearchSpace:
    """The space the real campaigns searched (the demo campaign's)."""
    from benchmarks.search_campaigns import DEMO_SPEC

    return CampaignSpec.from_yaml(DEMO_SPEC).space()
