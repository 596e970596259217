import numpy as np
import torch

from yolo.boxes import (
    box_iou, nms, non_max_suppression, scale_boxes, xywh2xyxy, xywhn2xyxy, xyxy2xywh, xyxy2xywhn,
)


def _textbook_nms(boxes, scores, threshold):
    order = scores.argsort(descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(int(order[i]))
            suppressed |= iou[i] > threshold
    return keep


def test_blocked_nms_equals_textbook_greedy():
    g = torch.Generator().manual_seed(0)
    for n in (1, 7, 513, 2000):
        xy = torch.rand(n, 2, generator=g) * 200
        wh = torch.rand(n, 2, generator=g) * 80 + 1
        boxes, scores = torch.cat((xy, xy + wh), 1), torch.rand(n, generator=g)
        for threshold in (0.3, 0.6):
            assert nms(boxes, scores, threshold).tolist() == _textbook_nms(boxes, scores, threshold)


def test_tied_scores_resolve_by_input_order_and_duplicates_change_nothing():
    # A and B tie and overlap; C overlaps B only. Keeping A (the earlier) suppresses B, so C
    # survives; an order that put B first would drop both A and C.
    boxes = torch.tensor([[0, 0, 10, 10], [4, 0, 14, 10], [9, 0, 19, 10.0]])
    scores = torch.tensor([0.5, 0.5, 0.4])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    # Every candidate twice (a model ensembled with itself) keeps the same boxes, many ties or not.
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        xy = torch.rand(600, 2, generator=g) * 100
        boxes = torch.cat((xy, xy + torch.rand(600, 2, generator=g) * 40 + 1), 1)
        scores = torch.randint(0, 8, (600,), generator=g).float() / 8  # heavy ties
        alone = boxes[nms(boxes, scores, 0.6)]
        pooled = torch.cat((boxes, boxes))[nms(torch.cat((boxes, boxes)), torch.cat((scores, scores)), 0.6)]
        assert torch.equal(alone, pooled)


def test_nms_max_keep_and_per_class():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    # same boxes but different classes survive per-class NMS
    pred = torch.zeros(1, 3, 7)
    pred[0, :, :4] = xyxy2xywh(boxes)
    pred[0, :, 4] = scores
    pred[0, 0, 5] = pred[0, 1, 5] = 1.0
    pred[0, 2, 6] = 1.0
    out = non_max_suppression(pred, conf_threshold=0.1, iou_threshold=0.5, multi_label=False)[0]
    assert out[:, 5].tolist() == [0.0, 1.0]
    assert len(non_max_suppression(pred, 0.1, 0.5, max_det=1)[0]) == 1


def test_conversions_roundtrip():
    x = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    assert torch.allclose(xyxy2xywh(xywh2xyxy(x)), x)
    n = np.array([[0.5, 0.5, 0.2, 0.4]])
    px = xywhn2xyxy(n, 100, 50, padw=3)
    assert np.allclose(px, [[43, 15, 63, 35]])
    assert np.allclose(xyxy2xywhn(px - [3, 0, 3, 0], 100, 50), n)


def test_scale_boxes_undoes_letterbox():
    # a 200x100 image letterboxed to 64x64: gain 0.32, padded 16 px top and bottom
    box = torch.tensor([[10.0, 20.0, 110.0, 80.0]])
    letterboxed = box * 0.32 + torch.tensor([0, 16, 0, 16])
    back = scale_boxes((64, 64), letterboxed.clone(), (100, 200))
    assert torch.allclose(back, box, atol=1e-4)
