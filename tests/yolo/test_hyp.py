import dataclasses

import pytest

from yolo.hyp import Hyperparameters

YOLOV5_STYLE = """\
# a hyp file in YOLOv5's layout: every key on its own line with a trailing comment
lr0: 0.01  # initial learning rate
lrf: 0.01
momentum: 0.937
weight_decay: 0.0005
warmup_epochs: 3.0
warmup_momentum: 0.8
warmup_bias_lr: 0.1
box: 0.05
cls: 0.5
cls_pw: 1.0
obj: 1.0
obj_pw: 1.0
iou_t: 0.20
anchor_t: 4.0
# anchors: 3  (commented out in YOLOv5's files)
fl_gamma: 0.0
hsv_h: 0.015
hsv_s: 0.7
hsv_v: 0.4
degrees: 0.0
translate: 0.1
scale: 0.5
shear: 0.0
perspective: 0.0
flipud: 0.0
fliplr: 0.5
mosaic: 1.0
mixup: 0.0
copy_paste: 0.0
"""


def test_yolov5_hyp_file_loads_unchanged(tmp_path):
    path = tmp_path / "hyp.yaml"
    path.write_text(YOLOV5_STYLE)
    hyp = Hyperparameters.from_yaml(path)
    assert hyp == Hyperparameters()
    assert len(Hyperparameters.keys()) == 29


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "hyp.yaml"
    path.write_text(YOLOV5_STYLE + "lr_zero: 0.1\nmoment: 2\n")
    with pytest.raises(ValueError, match="lr_zero, moment"):
        Hyperparameters.from_yaml(path)


def test_non_numbers_rejected():
    with pytest.raises(ValueError, match="'lr0'"):
        Hyperparameters.from_dict({"lr0": "fast"})


def test_value_is_immutable_and_input_untouched():
    source = {"lr0": 0.02, "box": 0.1}
    hyp = Hyperparameters.from_dict(source)
    assert source == {"lr0": 0.02, "box": 0.1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        hyp.lr0 = 1.0  # type: ignore[misc]
    changed = hyp.replace(lr0=0.03)
    assert hyp.lr0 == 0.02 and changed.lr0 == 0.03 and changed.box == 0.1


def test_anchors_per_level_rounds():
    assert Hyperparameters(anchors=3.4).anchors_per_level == 3
    assert Hyperparameters(anchors=4.6).anchors_per_level == 5
