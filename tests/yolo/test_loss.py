"""Tests for the YOLOv5 detection loss (target assignment, CIoU, gains, focal loss)."""

from __future__ import annotations

import math

import pytest
import torch

from yolo.hyp import Hyperparameters
from yolo.loss import DetectionLoss, LossGains, bbox_ciou

IMG = 64
STRIDES = (8.0, 16.0, 32.0)
DEFAULT_ANCHORS_PX = torch.tensor(
    [[[10, 13], [16, 30], [33, 23]], [[30, 61], [62, 45], [59, 119]], [[116, 90], [156, 198], [373, 326]]],
    dtype=torch.float32,
)
DEFAULT_ANCHORS = DEFAULT_ANCHORS_PX / torch.tensor(STRIDES)[:, None, None]


def random_preds(nc: int, na: int = 3, batch: int = 2, seed: int = 0, grad: bool = False) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    preds = [torch.randn(batch, na, IMG // int(s), IMG // int(s), 5 + nc, generator=gen) for s in STRIDES]
    return [p.requires_grad_(grad) for p in preds]


def sample_targets() -> torch.Tensor:
    # (image, class, cx, cy, w, h) normalised; sizes near the default anchors at 64 px.
    return torch.tensor(
        [
            [0, 0, 0.30, 0.40, 0.20, 0.35],
            [0, 2, 0.70, 0.70, 0.50, 0.60],
            [1, 1, 0.55, 0.25, 0.15, 0.20],
        ]
    )


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p / (1 - p))


def test_ciou_identical_and_disjoint() -> None:
    a = torch.tensor([[5.0, 5.0, 2.0, 3.0]])
    assert bbox_ciou(a, a).item() == pytest.approx(1.0, abs=1e-5)
    far = torch.tensor([[20.0, 20.0, 2.0, 3.0]])
    assert bbox_ciou(a, far).item() < 0
    shifted = torch.tensor([[5.5, 5.0, 2.0, 3.0]])
    assert 0 < bbox_ciou(a, shifted).item() < 1


def test_target_lands_in_own_and_nearer_neighbour_cells() -> None:
    # Level 0 anchors 1x1 and 8x8 grid units: a 1x1 target can only match anchor 0 (ratio 8 > 4).
    anchors = torch.tensor([[[1.0, 1.0], [8.0, 8.0]]] * 3)
    loss = DetectionLoss(anchors, STRIDES, nc=3, hyp=Hyperparameters(), img_size=IMG)
    shape = torch.Size((1, 2, 8, 8, 8))
    # xy on the 8x8 grid = (2.4, 3.2): left half in x, top half in y -> left and upper neighbours.
    t = loss.build_targets(0, shape, torch.tensor([[0, 1, 2.4 / 8, 3.2 / 8, 1 / 8, 1 / 8]]))
    assert t.anchor.tolist() == [0, 0, 0]
    cells = {(y, x) for y, x in zip(t.grid_y.tolist(), t.grid_x.tolist())}
    assert cells == {(3, 2), (3, 1), (2, 2)}
    offsets = {tuple(round(v, 4) for v in row) for row in t.box[:, :2].tolist()}
    assert offsets == {(0.4, 0.2), (1.4, 0.2), (0.4, 1.2)}
    assert torch.allclose(t.box[:, 2:], torch.ones(3, 2))
    assert t.cls.tolist() == [1, 1, 1] and t.image.tolist() == [0, 0, 0]
    # xy = (2.7, 3.6): right half in x, bottom half in y -> right and lower neighbours.
    t = loss.build_targets(0, shape, torch.tensor([[0, 1, 2.7 / 8, 3.6 / 8, 1 / 8, 1 / 8]]))
    assert {(y, x) for y, x in zip(t.grid_y.tolist(), t.grid_x.tolist())} == {(3, 2), (3, 3), (4, 2)}
    # In the first cell (x < 1, y < 1) there is no left/upper neighbour to borrow.
    t = loss.build_targets(0, shape, torch.tensor([[0, 1, 0.3 / 8, 0.2 / 8, 1 / 8, 1 / 8]]))
    assert list(zip(t.grid_y.tolist(), t.grid_x.tolist())) == [(0, 0)]


def test_target_matches_every_anchor_within_ratio() -> None:
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, nc=3, hyp=Hyperparameters(anchor_t=4.0), img_size=IMG)
    target = torch.tensor([[0, 0, 0.5 + 0.5 / 8, 0.5 + 0.5 / 8, 16 / IMG, 30 / IMG]])  # cell centre
    t = loss.build_targets(0, torch.Size((1, 3, 8, 8, 8)), target)
    assert sorted(t.anchor.tolist()) == [0, 1, 2]  # 16x30 is within 4x of all three P3 anchors
    tight = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, Hyperparameters(anchor_t=1.2), IMG)
    t = tight.build_targets(0, torch.Size((1, 3, 8, 8, 8)), target)
    assert t.anchor.tolist() == [1]  # exactly the (16, 30) anchor, in its own cell only
    assert (t.grid_x.item(), t.grid_y.item()) == (4, 4)


def test_target_far_from_all_anchors_has_no_positive() -> None:
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, nc=3, hyp=Hyperparameters(), img_size=IMG)
    sliver = torch.tensor([[0, 1, 0.5, 0.5, 0.9, 1 / IMG]])  # 58 x 1 px: 10x off every anchor height
    preds = random_preds(3)
    for level, pred in enumerate(preds):
        assert loss.build_targets(level, pred.shape, sliver).image.numel() == 0
    _, items = loss(preds, sliver)
    assert items[0].item() == 0 and items[2].item() == 0 and items[1].item() > 0


def test_loss_finite_positive_and_differentiable() -> None:
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, nc=3, hyp=Hyperparameters(), img_size=IMG)
    preds = random_preds(3, grad=True)
    total, items = loss(preds, sample_targets())
    assert total.ndim == 0 and torch.isfinite(total) and total.item() > 0
    assert items.shape == (3,) and not items.requires_grad and (items > 0).all()
    assert total.item() == pytest.approx(items.sum().item() * 2, rel=1e-5)  # times batch size 2
    total.backward()
    for p in preds:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_no_targets_gives_objectness_only() -> None:
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, nc=3, hyp=Hyperparameters(), img_size=IMG)
    total, items = loss(random_preds(3), torch.zeros((0, 6)))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0 and torch.isfinite(total)


def perfect_preds(loss: DetectionLoss, targets: torch.Tensor, nc: int) -> list[torch.Tensor]:
    """Raw outputs that decode exactly to every assigned target, confident, right class."""
    preds = []
    for level, stride in enumerate(STRIDES):
        n = IMG // int(stride)
        pred = torch.full((2, loss.na, n, n, 5 + nc), -12.0)
        t = loss.build_targets(level, pred.shape, targets)
        where = (t.image, t.anchor, t.grid_y, t.grid_x)
        pred[where + (slice(0, 2),)] = logit((t.box[:, :2] + 0.5) / 2)
        pred[where + (slice(2, 4),)] = logit(torch.sqrt(t.box[:, 2:] / t.anchor_wh) / 2)
        pred[where + (4,)] = 12.0
        pred[where + (5 + t.cls,)] = 12.0
        preds.append(pred)
    return preds


def test_perfect_predictions_beat_random_ones() -> None:
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, nc=3, hyp=Hyperparameters(), img_size=IMG)
    targets = sample_targets()
    _, perfect = loss(perfect_preds(loss, targets, 3), targets)
    _, rand = loss(random_preds(3), targets)
    assert perfect[0] < 1e-4 * rand[0]
    assert perfect[1] < 0.01 * rand[1] and perfect[2] < 0.01 * rand[2]


def test_focal_loss_changes_obj_and_cls_only() -> None:
    preds, targets = random_preds(3), sample_targets()
    _, plain = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, Hyperparameters(), IMG)(preds, targets)
    _, focal = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, Hyperparameters(fl_gamma=1.5), IMG)(preds, targets)
    assert focal[0].item() == pytest.approx(plain[0].item())
    assert focal[1] < plain[1] and focal[2] < plain[2]


@pytest.mark.parametrize("key,index", [("box", 0), ("obj", 1), ("cls", 2)])
def test_gains_scale_their_item(key: str, index: int) -> None:
    preds, targets = random_preds(3), sample_targets()
    base = Hyperparameters()
    _, ref = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, base, IMG)(preds, targets)
    doubled = base.replace(**{key: getattr(base, key) * 2})
    _, got = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, doubled, IMG)(preds, targets)
    expected = ref.clone()
    expected[index] *= 2
    assert torch.allclose(got, expected, rtol=1e-5)


def test_gains_rescaled_like_yolov5_train() -> None:
    hyp = Hyperparameters()
    assert LossGains.from_hyp(hyp, nc=80, nl=3, img_size=640) == LossGains(hyp.box, hyp.obj, hyp.cls)
    g = LossGains.from_hyp(hyp, nc=4, nl=3, img_size=320)
    assert g.box == pytest.approx(0.05) and g.cls == pytest.approx(0.5 * 4 / 80)
    assert g.obj == pytest.approx(1.0 * 0.25)
    g4 = LossGains.from_hyp(hyp, nc=80, nl=4, img_size=640)
    assert g4.box == pytest.approx(0.05 * 3 / 4) and g4.obj == pytest.approx(0.75)


def test_hyp_unchanged_after_use() -> None:
    hyp = Hyperparameters(box=0.07, cls=0.4, obj=1.2, fl_gamma=1.0)
    before = hyp.to_dict()
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, hyp, img_size=320)
    loss(random_preds(3), sample_targets())
    assert hyp.to_dict() == before
    assert loss.gains.obj == pytest.approx(1.2 * (320 / 640) ** 2)


def test_single_class_has_no_class_loss() -> None:
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, nc=1, hyp=Hyperparameters(), img_size=IMG)
    targets = sample_targets()
    targets[:, 1] = 0
    total, items = loss(random_preds(1, grad=True), targets)
    assert items[2].item() == 0 and items[0] > 0 and items[1] > 0
    total.backward()


@pytest.mark.parametrize("na", [2, 5])
def test_other_anchor_counts(na: int) -> None:
    sizes = torch.linspace(8, 200, 3 * na).reshape(3, na, 1) * torch.tensor([1.0, 1.3])
    anchors = sizes / torch.tensor(STRIDES)[:, None, None]
    loss = DetectionLoss(anchors, STRIDES, nc=3, hyp=Hyperparameters(anchors=na), img_size=IMG)
    preds = random_preds(3, na=na, grad=True)
    total, items = loss(preds, sample_targets())
    assert torch.isfinite(total) and (items > 0).all()
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in preds)
    _, perfect = loss(perfect_preds(loss, sample_targets(), 3), sample_targets())
    assert perfect[0] < 1e-4 * items[0]


def test_from_model_reads_detect_layer() -> None:
    class FakeDetect:  # stands in for the Detect layer's attributes only
        anchors, stride, nc = DEFAULT_ANCHORS, torch.tensor(STRIDES), 5

    class FakeModel:
        detect = FakeDetect()

    loss = DetectionLoss.from_model(FakeModel(), Hyperparameters(), img_size=IMG)
    assert loss.nc == 5 and loss.strides == STRIDES and torch.equal(loss.anchors, DEFAULT_ANCHORS)
    assert math.isclose(loss.gains.cls, 0.5 * 5 / 80)


def test_mismatched_levels_rejected() -> None:
    with pytest.raises(ValueError):
        DetectionLoss(DEFAULT_ANCHORS, STRIDES[:2], 3, Hyperparameters(), IMG)
    loss = DetectionLoss(DEFAULT_ANCHORS, STRIDES, 3, Hyperparameters(), IMG)
    with pytest.raises(ValueError):
        loss(random_preds(3)[:2], sample_targets())
