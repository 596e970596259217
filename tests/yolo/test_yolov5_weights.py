"""YOLOv5's own checkpoints (../shared/fixtures/yolov5, written by its train.py), read safely.

The references are YOLOv5's eval-mode outputs for the fixture images, computed by YOLOv5 itself
from the same files; ours must equal them within 1e-4 (relative where |x| > 1).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.paths import YOLOV5_FIXTURES
from yolo.checkpoint import load_checkpoint, load_model
from yolo.safe_unpickle import PickledObject, UnsafeCheckpointError, load_restricted
from yolo.yolov5_weights import UnsupportedCheckpointError, checkpoint_from_payload, convert_yolov5_checkpoint

FIXTURES = YOLOV5_FIXTURES
CHECKPOINTS = ("yolov5n-coco128-best", "yolov5n-coco128-epoch1", "yolov5s-coco128-best")


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float((np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))).max())


def eval_output(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images).float() / 255)[0].numpy()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_eval_output_equals_yolov5s_own(name):
    reference = np.load(FIXTURES / f"{name}.npz")
    model, checkpoint = load_model(FIXTURES / f"{name}.pt")
    assert checkpoint.origin == "yolov5"
    for images, output in (("images", "output0"), ("rect_images", "rect_output0")):
        ours = eval_output(model, reference[images])
        assert ours.shape == reference[output].shape
        assert relative_error(ours, reference[output]) <= 1e-4, (name, images)
    assert checkpoint.names == [str(n) for n in reference["names"]]
    assert model.stride.tolist() == reference["stride"].tolist()
    assert torch.equal(model.detect.anchors, torch.from_numpy(reference["anchors"]).float())  # AutoAnchor'ed ones
    assert all(v.dtype in (torch.float32, torch.int64) for v in checkpoint.model_state.values())
    assert checkpoint.model_config["name"] == name.split("-")[0]


def test_mid_training_checkpoint_gives_the_emas_output_not_the_raw_models():
    path = FIXTURES / "yolov5n-coco128-epoch1.pt"
    reference = np.load(FIXTURES / "yolov5n-coco128-epoch1.npz")
    payload = load_restricted(path)
    raw = checkpoint_from_payload({**payload, "ema": None}, str(path))  # what `model` alone would give
    model, _ = load_model(path)
    raw_model, _ = load_model(path)
    raw_model.load_state_dict(raw.model_state)
    ema_error = relative_error(eval_output(model, reference["images"]), reference["output0"])
    raw_error = relative_error(eval_output(raw_model, reference["images"]), reference["output0"])
    # After 16 updates the EMA is still close to the raw weights, but not within the tolerance.
    assert ema_error <= 1e-4 < raw_error and ema_error < raw_error / 100


def test_convert_writes_a_weights_only_file_with_the_same_outputs(tmp_path):
    reference = np.load(FIXTURES / "yolov5s-coco128-best.npz")
    out, _ = convert_yolov5_checkpoint(FIXTURES / "yolov5s-coco128-best.pt", tmp_path / "s.pt")
    assert torch.load(out, weights_only=True)["format"] == "evolver-yolo-1"  # no class named in it
    model, checkpoint = load_model(out)
    assert checkpoint.origin == "evolver" and checkpoint.model_config["name"] == "yolov5s"
    assert relative_error(eval_output(model, reference["images"]), reference["output0"]) <= 1e-4
    with pytest.raises(ValueError, match="is the YOLOv5 file itself"):
        convert_yolov5_checkpoint(out, out)


def test_v6_release_class_name_model_is_read():
    path = FIXTURES / "yolov5n-coco128-best.pt"
    payload = load_restricted(path)
    payload["model"].qualname = "models.yolo.Model"  # YOLOv5 v6.x release files name this class
    assert checkpoint_from_payload(payload, str(path)).model_config["name"] == "yolov5n"


def test_p6_and_custom_architectures_are_refused_saying_what_is_supported():
    path = FIXTURES / "yolov5n-coco128-best.pt"
    payload = load_restricted(path)
    payload["model"].state["stride"] = torch.tensor([8.0, 16.0, 32.0, 64.0])
    with pytest.raises(UnsupportedCheckpointError, match="P6 models such as yolov5s6 are not supported.*yolov5n/s/m/l/x"):
        checkpoint_from_payload(payload, str(path))

    payload = load_restricted(path)
    payload["model"].state["yaml"]["backbone"][2] = [-1, 2, "C3", [128]]  # a custom depth
    with pytest.raises(UnsupportedCheckpointError, match="layer 2 of its model yaml"):
        checkpoint_from_payload(payload, str(path))

    payload = load_restricted(path)
    payload["model"].state["yaml"]["width_multiple"] = 0.4
    with pytest.raises(UnsupportedCheckpointError, match="multiples"):
        checkpoint_from_payload(payload, str(path))


# ----------------------------------------------------------------------------- hostile files
class _RunsCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_reduce_calling_os_system_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    torch.save({"model": _RunsCommand(marker), "epoch": 1}, path)
    for load in (load_checkpoint, load_restricted):
        with pytest.raises(UnsafeCheckpointError, match=r"hostile\.pt.*'posix\.system'"):
            load(path)
    assert not marker.exists()


class _NotAllowed:
    pass


def test_a_global_outside_the_allowlist_is_refused_by_name(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": _NotAllowed()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"other\.pt: refusing to load global 'tests\.yolo\.test_yolov5_weights\._NotAllowed'"):
        load_checkpoint(path)
    path = tmp_path / "eval.pt"
    path.write_bytes(_zip_with_pickle(b"cbuiltins\neval\n(S'1+1'\ntR."))
    with pytest.raises(UnsafeCheckpointError, match="'builtins.eval'"):
        load_restricted(path)


def test_pre_v6_focus_checkpoints_are_refused_with_the_reason(tmp_path, monkeypatch):
    common = types.ModuleType("models.common")

    class Focus(nn.Module):  # the stem of YOLOv5 < 6.0
        pass

    Focus.__module__, Focus.__qualname__ = "models.common", "Focus"
    common.Focus = Focus
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.common", common)
    path = tmp_path / "v5.pt"
    torch.save({"model": Focus()}, path)
    with pytest.raises(UnsafeCheckpointError, match="before v6.0 .Focus stem. is not supported"):
        load_checkpoint(path)


def rewritten_copy(source: Path, target: Path, change) -> Path:
    """`source`'s zip records written to `target` through `change(name, data) -> data`."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change(info.filename, zin.read(info)))
    return target


def test_a_storage_claiming_more_bytes_than_the_file_holds_is_refused(tmp_path):
    path = rewritten_copy(FIXTURES / "yolov5n-coco128-best.pt", tmp_path / "short-storage.pt",
                          lambda name, data: data[: len(data) // 2] if name.endswith("/data/0") else data)
    with pytest.raises(UnsafeCheckpointError, match=r"storage '0' claims \d+ bytes but the file holds \d+"):
        load_checkpoint(path)


def test_a_truncated_zip_is_refused(tmp_path):
    data = (FIXTURES / "yolov5s-coco128-best.pt").read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UnsafeCheckpointError, match="not a torch zip archive"):
        load_restricted(path)
    with pytest.raises(ValueError, match="damaged or truncated"):
        load_checkpoint(path)


def _zip_with_pickle(pickled: bytes) -> bytes:
    """A torch-style archive around a hand-written pickle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/byteorder", "little")
    return buffer.getvalue()


def test_allowed_module_classes_are_records_that_take_no_arguments(tmp_path):
    model = load_restricted(FIXTURES / "yolov5n-coco128-best.pt")["model"]
    assert isinstance(model, PickledObject) and model.qualname == "models.yolo.DetectionModel"
    path = tmp_path / "called.pt"
    path.write_bytes(_zip_with_pickle(b"cmodels.common\nConv\n(S'rm -rf /'\ntR."))
    with pytest.raises(UnsafeCheckpointError, match="constructed with arguments"):
        load_restricted(path)


@pytest.fixture()
def three_class_data(tmp_path) -> Path:
    """A small synthetic set with three classes (the fourth class's boxes dropped)."""
    from yolo.synthetic import CLASS_NAMES, generate_synthetic_dataset

    source = generate_synthetic_dataset(tmp_path / "shapes", n_train=16, n_val=8, img_size=128, seed=3).parent
    root = tmp_path / "three"
    shutil.copytree(source, root)
    for label in (root / "labels").rglob("*.txt"):
        lines = [line for line in label.read_text().splitlines() if not line.startswith("3 ")]
        label.write_text("".join(f"{line}\n" for line in lines))
    yaml_path = root / "data.yaml"
    yaml_path.write_text(f"path: .\ntrain: images/train\nval: images/val\nnc: 3\nnames: {list(CLASS_NAMES[:3])}\n")
    return yaml_path


def test_fine_tune_of_a_yolov5_checkpoint_on_three_classes(three_class_data, tmp_path):
    from yolo.hyp import Hyperparameters
    from yolo.train import TrainConfig, train

    weights = FIXTURES / "yolov5n-coco128-best.pt"
    source = load_checkpoint(weights)
    config = TrainConfig(data=str(three_class_data), weights=str(weights), epochs=1, img_size=128, batch_size=8,
                         workers=0, save_dir=str(tmp_path / "run"), progress=False, freeze=tuple(range(24)))
    result = train(config, Hyperparameters())
    assert set(result.metrics) >= {"metrics/mAP_0.5", "metrics/mAP_0.5:0.95"}
    tuned = load_checkpoint(result.weights)
    assert tuned.model_config["name"] == "yolov5n" and tuned.model_config["nc"] == 3  # the weights' size, data's nc
    assert tuned.model_state["model.24.m.0.weight"].shape[0] == 3 * (3 + 5)  # new output convs
    for name in ("model.0.conv.weight", "model.9.cv2.conv.weight", "model.23.cv3.conv.weight"):
        torch.testing.assert_close(tuned.model_state[name], source.model_state[name], rtol=0, atol=1e-6)  # frozen: kept


def test_a_checkpoint_of_the_yolov5_pip_package_loads_like_the_repository_one(tmp_path):
    """`pip install yolov5` saves YOLOv5's classes under its package name (`yolov5.models.yolo.
    DetectionModel`); the same file with those names must load to the same tensors."""
    source = FIXTURES / "yolov5n-coco128-best.pt"

    def package_names(name: str, data: bytes) -> bytes:
        if not name.endswith("data.pkl"):
            return data
        assert b"cmodels.yolo\n" in data  # pickle protocol 2 names classes with GLOBAL: module newline name
        return data.replace(b"cmodels.", b"cyolov5.models.")

    renamed = rewritten_copy(source, tmp_path / "pip-package.pt", package_names)
    ours, theirs = load_checkpoint(source), load_checkpoint(renamed)
    assert ours.model_state.keys() == theirs.model_state.keys() and ours.names == theirs.names
    assert all(torch.equal(ours.model_state[k], theirs.model_state[k]) for k in ours.model_state)
