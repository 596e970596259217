"""Scoring checkpoints on a split: the same numbers as training's validation, any split, and
`evolver val --split test` against labels whose score is known before running it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.paths import REPO
from yolo.boxes import non_max_suppression, scale_boxes
from yolo.checkpoint import load_checkpoint, load_model
from yolo.cli import main
from yolo.data import load_data_config
from yolo.evaluate import checkpoint_hyp, evaluate_checkpoint, split_loader
from yolo.loader import DatasetCache
from yolo.metrics import coco_iou
from yolo.synthetic import builtin_dataset, generate_synthetic_dataset
from yolo.val import inference_copy

SHIPPED = REPO / "examples" / "yolov5n-shapes.pt"  # yolov5n trained on the built-in dataset at 160 px
SHIPPED_IMG = 160


def test_last_pt_on_val_repeats_the_final_epoch(trained_run, tiny_synthetic):
    config, result, reports = trained_run
    final = reports[-1].val
    assert final.metrics.map50 > 0 and final.losses is not None  # a run that learnt something
    last = load_checkpoint(result.last)
    # last.pt's `model` is the EMA (what each epoch validates); the raw weights are `train_model`.
    assert last.epoch == config.epochs - 1 and last.train_state is not None
    assert any(not torch.equal(v, last.train_state[k]) for k, v in last.model_state.items())

    cache = DatasetCache()
    for _ in range(2):  # the second time from the shared cache: same numbers
        score = evaluate_checkpoint(result.last, tiny_synthetic, "val", img_size=config.img_size,
                                    batch_size=2 * config.batch_size, fitness_weights=config.fitness_weights,
                                    dataset_cache=cache)
        # Bit-identical on a CPU (same weights, loader and kernels); 1e-6 leaves room for GPU kernels.
        assert score.as_dict() == pytest.approx(final.as_dict(), rel=0, abs=1e-6)
        assert score.as_dict() == pytest.approx(result.metrics, rel=0, abs=1e-6)
        assert score.images == final.images == 16
    assert cache.hits == 16


def test_unknown_split_missing_test_split_and_other_classes(tiny_synthetic: Path, tmp_path: Path):
    with pytest.raises(ValueError, match=re.escape("unknown split 'valid' (expected one of train, val, test)")):
        evaluate_checkpoint(SHIPPED, tiny_synthetic, "valid", img_size=SHIPPED_IMG)
    root = tiny_synthetic.parent
    no_test = tmp_path / "no-test.yaml"
    no_test.write_text(f"train: {root / 'images/train'}\nval: {root / 'images/val'}\nnames: [a, b, c, d]\n")
    with pytest.raises(ValueError, match="^" + re.escape(f"{no_test} has no 'test' split")):
        evaluate_checkpoint(SHIPPED, no_test, "test", img_size=SHIPPED_IMG)
    one_class = tmp_path / "one-class.yaml"
    one_class.write_text(f"train: {root / 'images/train'}\nval: {root / 'images/val'}\nnames: [a]\n")
    with pytest.raises(ValueError, match=f"predicts 4 classes but {re.escape(str(one_class))} names 1"):
        evaluate_checkpoint(SHIPPED, one_class, "val", img_size=SHIPPED_IMG)


def test_shipped_checkpoint_scores_on_builtin_val_what_its_training_recorded(tmp_path: Path):
    """The built-in dataset gained a test split; its val images must be the ones the shipped
    checkpoint was validated on (its weights are float16 now, hence the tolerance)."""
    data = builtin_dataset("synthetic", tmp_path)
    recorded = load_checkpoint(SHIPPED).metrics
    score = evaluate_checkpoint(SHIPPED, data, "val", img_size=SHIPPED_IMG, batch_size=32).as_dict()
    for key in ("metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "fitness", "val/box_loss"):
        assert score[key] == pytest.approx(recorded[key], rel=0, abs=3e-3), key


# ---------------------------------------------------------------- `evolver val --split test`, scored by hand


def _detections(images_yaml: Path) -> dict[Path, tuple[tuple[int, int], torch.Tensor]]:
    """image -> ((h, w), detections [n, 6] in its pixels) of the shipped model on the test split,
    computed as validation computes them (same loader, fused model, NMS)."""
    model, checkpoint = load_model(SHIPPED)
    loader, _ = split_loader(load_data_config(images_yaml), "test", SHIPPED_IMG, 32, checkpoint_hyp(checkpoint))
    fused, found = inference_copy(model), {}
    with torch.inference_mode():
        for imgs, _targets, paths, shapes in loader:
            x = imgs.float().div_(255).contiguous(memory_format=torch.channels_last)
            for path, shape, det in zip(paths, shapes, non_max_suppression(fused(x)[0], 0.001, 0.6, 300)):
                det[:, :4] = scale_boxes(tuple(x.shape[2:]), det[:, :4].clone(), shape[0], shape[1])
                found[Path(path)] = (shape[0], det)
    return found


def _confidence_gap(confidences: np.ndarray) -> float:
    """The middle of the widest gap between detection confidences in [0.3, 0.9]: every detection
    is clearly above or below it, so near-equal scores cannot swap sides."""
    points = np.sort(np.r_[0.3, confidences[(confidences > 0.3) & (confidences < 0.9)], 0.9])
    widest = int(np.diff(points).argmax())
    assert points[widest + 1] - points[widest] > 0.01, "no clear confidence gap to split at"
    return float(points[widest : widest + 2].mean())


def _split_with_labels(source: Path, folder: Path, labels: dict[str, list[str]]) -> Path:
    """A data yaml whose test split is copies of `source`'s test images with `labels` (by file
    name); train and val stay the source's."""
    (folder / "labels" / "test").mkdir(parents=True)
    shutil.copytree(source.parent / "images" / "test", folder / "images" / "test")
    for name, lines in labels.items():
        (folder / "labels" / "test" / name).write_text("".join(line + "\n" for line in lines))
    yaml_path = folder / "data.yaml"
    yaml_path.write_text(f"path: .\ntrain: {source.parent / 'images/train'}\nval: {source.parent / 'images/val'}\n"
                         "test: images/test\nnames: [circle, square, triangle, cross]\n")
    return yaml_path


def _printed_scores(out: str) -> tuple[float, float, float]:
    found = re.search(r"mAP@0\.5 (\S+)  mAP@0\.5:0\.95 (\S+)  fitness (\S+)", out)
    assert found, out
    return tuple(float(v) for v in found.groups())


def test_val_split_test_on_labels_of_known_score(tmp_path: Path, capsys):
    """Labels = the model's own confident detections: every one is found at IoU ~1, and every
    detection that is no label scores below all that are, so AP is 1 at every IoU threshold
    (mAP@0.5 = mAP@0.5:0.95 = fitness = 1). Labels = a 4 px box of a class no detection of that
    class overlaps by IoU >= 0.5: nothing is ever found, so everything is 0. The val split holds
    real labels (mAP@0.5:0.95 about 0.8), so a --split that is not obeyed shows."""
    source = generate_synthetic_dataset(tmp_path / "shapes", n_train=1, n_val=4, n_test=6, img_size=SHIPPED_IMG,
                                        seed=11)
    detections = _detections(source)
    threshold = _confidence_gap(np.concatenate([det[:, 4].numpy() for _, det in detections.values()]))
    confident, impossible = {}, {}
    corner = np.array([[1.0, 1.0, 5.0, 5.0]])
    for path, ((h, w), det) in detections.items():
        keep = det[det[:, 4] > threshold].double().numpy()
        confident[path.with_suffix(".txt").name] = [
            f"{int(c)} {(x1 + x2) / 2 / w:.9f} {(y1 + y2) / 2 / h:.9f} {(x2 - x1) / w:.9f} {(y2 - y1) / h:.9f}"
            for x1, y1, x2, y2, _conf, c in keep]
        of_class_0 = det[det[:, 5] == 0, :4].double().numpy()
        assert len(of_class_0) == 0 or coco_iou(of_class_0, corner).max() < 0.5  # can never be matched
        impossible[path.with_suffix(".txt").name] = [f"0 {3 / w:.9f} {3 / h:.9f} {4 / w:.9f} {4 / h:.9f}"]
    assert sum(map(len, confident.values())) >= 10 and all(confident.values())
    perfect_yaml = _split_with_labels(source, tmp_path / "perfect", confident)
    impossible_yaml = _split_with_labels(source, tmp_path / "impossible", impossible)

    library = evaluate_checkpoint(SHIPPED, perfect_yaml, "test", img_size=SHIPPED_IMG)
    assert library.metrics.map50 == 1.0 and library.metrics.map == pytest.approx(1.0, abs=1e-12)
    assert library.fitness == pytest.approx(1.0, abs=1e-12) and library.images == 6

    common = ["val", "--weights", str(SHIPPED), "--img", str(SHIPPED_IMG), "--workers", "0"]
    assert main([*common, "--data", str(perfect_yaml), "--split", "test"]) == 0
    assert _printed_scores(capsys.readouterr().out) == (1.0, 1.0, 1.0)
    assert main([*common, "--data", str(impossible_yaml), "--task", "test"]) == 0  # YOLOv5 val.py's spelling
    assert _printed_scores(capsys.readouterr().out) == (0.0, 0.0, 0.0)
    assert main([*common, "--data", str(perfect_yaml), "--split", "val"]) == 0
    map50, map_, _ = _printed_scores(capsys.readouterr().out)
    assert 0.5 < map_ < 0.95 and map50 > map_  # the real labels of the val split


def test_val_split_test_without_a_test_split_is_one_line(tiny_synthetic: Path, tmp_path: Path, capsys):
    root = tiny_synthetic.parent
    no_test = tmp_path / "data.yaml"
    no_test.write_text(f"train: {root / 'images/train'}\nval: {root / 'images/val'}\nnames: [a, b, c, d]\n")
    assert main(["val", "--weights", str(SHIPPED), "--data", str(no_test), "--split", "test", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"python -m yolo val: error: {no_test} has no 'test' split (add 'test:' to it, naming its "
                   "images as for 'val': a folder, a .txt list or images)")
