from __future__ import annotations

import numpy as np
import pytest

from yolo.fitness import DEFAULT_FITNESS_WEIGHTS, fitness
from evolver.campaign import CampaignSpec
from evolver.space import Gene, SearchSpace
from yolo.hyp import Hyperparameters


def test_default_space_is_design_table():
    space = SearchSpace.default()
    assert space.names == tuple(Hyperparameters.keys())
    assert len(space.genes) == 29
    assert int(np.sum(space.gains > 0)) == 25  # DESIGN.md: 25 of the 29 mutate
    fixed = {gene.name for gene in space.genes if gene.gain == 0}
    assert fixed == {"iou_t", "fl_gamma", "perspective", "fliplr"}
    by_name = {gene.name: gene for gene in space.genes}
    assert by_name["lr0"] == Gene("lr0", 1.0, 1e-5, 0.1)
    assert by_name["momentum"] == Gene("momentum", 0.3, 0.6, 0.98)
    assert by_name["anchors"] == Gene("anchors", 2.0, 2.0, 10.0)
    assert by_name["perspective"] == Gene("perspective", 0.0, 0.0, 0.001)
    assert np.all(space.lowers <= space.uppers)
    # The defaults of the detector lie inside the limits.
    base = space.vector(Hyperparameters().to_dict())
    assert np.all((space.lowers <= base) & (base <= space.uppers))


def test_overrides_replace_only_named_fields():
    space = SearchSpace.default()
    changed = space.with_overrides({"lr0": {"gain": 0.5, "upper": 0.05}, "fliplr": {"gain": 1}})
    by_name = {gene.name: gene for gene in changed.genes}
    assert by_name["lr0"] == Gene("lr0", 0.5, 1e-5, 0.05)
    assert by_name["fliplr"].gain == 1.0
    assert changed.names == space.names
    assert space.genes[0] == Gene("lr0", 1.0, 1e-5, 0.1)  # the original is untouched
    assert [g for g in changed.genes if g.name not in ("lr0", "fliplr")] == \
        [g for g in space.genes if g.name not in ("lr0", "fliplr")]


@pytest.mark.parametrize("overrides, named", [
    ({"lr00": {"gain": 1.0}}, "lr00"),
    ({"lr0": {"gian": 1.0}}, "gian"),
    ({"lr0": {"lower": 0.5}}, "lr0"),  # lower 0.5 > upper 0.1
    ({"momentum": {"lower": 0.9, "upper": 0.8}}, "momentum"),
    ({"box": {"gain": -1.0}}, "box"),
    ({"box": {"gain": "high"}}, "box"),
    ({"box": {"upper": float("nan")}}, "box"),
])
def test_bad_overrides_name_the_key(overrides, named):
    with pytest.raises(ValueError, match=named):
        SearchSpace.default().with_overrides(overrides)


def test_duplicate_genes_rejected():
    with pytest.raises(ValueError, match="lr0"):
        SearchSpace((Gene("lr0", 1, 0, 1), Gene("lr0", 1, 0, 1)))


def test_vector_round_trip():
    space = SearchSpace.default()
    hyp = Hyperparameters().to_dict()
    assert space.to_hyp(space.vector(hyp)) == hyp
    with pytest.raises(KeyError, match="lr0"):
        space.vector({k: v for k, v in hyp.items() if k != "lr0"})


def test_fitness_weights():
    metrics = {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map": 0.2, "val_box_loss": 9.0}
    assert fitness(metrics) == pytest.approx(0.1 * 0.3 + 0.9 * 0.2)
    assert DEFAULT_FITNESS_WEIGHTS == (0.0, 0.0, 0.1, 0.9)
    assert fitness(metrics, (1, 0, 0, 0)) == pytest.approx(0.5)
    assert fitness(metrics, (0.25, 0.25, 0.25, 0.25)) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="map50"):
        fitness({"precision": 1, "recall": 1, "map": 1})
    with pytest.raises(ValueError, match="4"):
        fitness(metrics, (1.0, 0.0))


def test_free_is_the_genes_a_search_may_move_and_a_space_without_one_is_refused():
    space = SearchSpace.default()
    assert space.free.tolist() == [gene.free for gene in space.genes] and not space.free.flags.writeable
    space.require_free_gene()
    frozen = space.with_overrides({gene.name: {"gain": 0} for gene in space.genes})
    with pytest.raises(ValueError, match="no gene with gain > 0"):
        frozen.require_free_gene()
    for searcher in ("random", "yolov5-population", "blx", "tpe"):
        with pytest.raises(ValueError, match="no gene with gain > 0"):
            CampaignSpec(searcher=searcher, search_space={gene.name: {"gain": 0} for gene in space.genes}).build_searcher()
