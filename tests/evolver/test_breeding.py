"""The breeding rules without SQL or Ray: numbering, the total, --sync's gate and its held parents."""

from __future__ import annotations

from evolver.breeding import Breeding
from evolver.searcher import Observation, Suggestion
from evolver.tally import CampaignTally


class RecordingSearcher:
    """Remembers what it was told; suggests a hyp naming the trial."""

    def __init__(self) -> None:
        self.observed: list[int] = []

    def suggest(self, number: int) -> Suggestion:
        return Suggestion({"lr0": float(number)}, (), number)

    def observe(self, observation: Observation) -> None:
        self.observed.append(observation.number)


def test_async_breeding_numbers_children_observes_at_once_and_stops_at_the_total():
    searcher = RecordingSearcher()
    breeding = Breeding(searcher, CampaignTally(population=2, total=5), sync=False)
    children = [breeding.next_child() for _ in range(5)]
    assert [(c.number, c.generation) for c in children] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)]
    assert children[3].suggestion.hyp == {"lr0": 3.0}
    assert breeding.next_child() is None
    breeding.completed(1, Observation(3, {}, 0.5))
    assert searcher.observed == [3]


def test_sync_breeds_a_generation_only_after_the_last_closed_and_releases_parents_in_number_order():
    searcher = RecordingSearcher()
    tally = CampaignTally(population=2, total=6)
    breeding = Breeding(searcher, tally, sync=True)
    assert [breeding.next_child().number for _ in range(2)] == [0, 1]
    assert breeding.next_child() is None  # generation 1 waits for generation 0
    breeding.completed(0, Observation(1, {}, 0.9))
    breeding.completed(0, Observation(0, {}, 0.1))
    assert searcher.observed == [] and breeding.next_child() is None
    breeding.generation_closed(0)
    assert searcher.observed == [0, 1]  # number order, not the order they finished in
    assert [breeding.next_child().number for _ in range(2)] == [2, 3]
    assert breeding.next_child() is None
