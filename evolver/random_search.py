"""Random search over the same space as the GA: the baseline every searcher must beat.

Trial 0 trains the base hyperparameters (as the GA's does); every later trial draws each free
gene independently within its limits, uniformly, or log-uniformly for genes that span decades
(`Gene.log_scale`). Fixed genes keep the campaign's value. Trial `number` draws only from
`default_rng([seed, number])`, so a campaign repeats whatever order results arrive in, and
nothing needs rebuilding after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from evolver.searcher import Observation, Suggestion, trial_generator
from evolver.space import SearchSpace
from yolo.hyp import Hyperparameters


class RandomSearcher:
    def __init__(self, space: SearchSpace, base_hyp: Mapping[str, float], seed: int) -> None:
        space.require_free_gene()
        self._space = space
        self._base = Hyperparameters.from_dict(base_hyp).to_dict()
        self._seed = int(seed)

    def observe(self, observation: Observation) -> None:
        """Random search learns nothing from results."""

    def workers_changed(self, workers: int) -> None:
        """Draws do not depend on how many run at once."""

    def suggest(self, number: int) -> Suggestion:
        rng, seed = trial_generator(self._seed, number)
        if number == 0:
            return Suggestion(dict(self._base), (), seed)
        hyp = dict(self._base)
        for gene in self._space.genes:
            if not gene.free:
                continue
            if gene.log_scale:
                hyp[gene.name] = float(np.exp(rng.uniform(np.log(gene.lower), np.log(gene.upper))))
            else:
                hyp[gene.name] = float(rng.uniform(gene.lower, gene.upper))
        return Suggestion(hyp, (), seed)
