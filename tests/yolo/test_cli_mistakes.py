"""A newcomer's typical mistakes with the detector's commands, made as a newcomer makes them: the
real `evolver` command in a subprocess, run from an empty folder. Each is refused with exit status
2 in one line naming the flag, file or value and what would be accepted, before any model is
built or dataset scanned where the check can come earlier, and never with a traceback. Sizes that
are not a multiple of the largest stride are rounded up with a one-line warning, as YOLOv5 does.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.paths import REPO, SHARED
from yolo.synthetic import generate_synthetic_dataset

SHIPPED = REPO / "examples" / "yolov5n-shapes.pt"  # an evolver checkpoint of 4 classes
YOLOV5N = SHARED / "weights" / "yolov5n.pt"  # YOLOv5's own, 80 classes
VEHICLES = SHARED / "datasets" / "vehicles-openimages" / "data.yaml"  # 5 classes
SCAN_LINE = "backgrounds"  # in every scan summary: "N images, M boxes, K backgrounds, ..."


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The last line on stderr: where `evolver` puts its one-line refusal."""
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture
def newcomer(tmp_path: Path):
    """Run `evolver ARGS` in an empty folder, as someone trying the README would."""
    folder = tmp_path / "empty"
    folder.mkdir()

    def run(*args: str | Path, timeout: float = 120) -> Outcome:
        done = subprocess.run([sys.executable, "-m", "evolver", *map(str, args)], cwd=folder, capture_output=True,
                              text=True, timeout=timeout)
        return Outcome(done.returncode, done.stdout, done.stderr)

    run.folder = folder
    return run


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Two train and two val images of the synthetic shapes (4 classes, as the shipped weights)."""
    return generate_synthetic_dataset(tmp_path_factory.mktemp("tiny"), n_train=2, n_val=2, img_size=64, n_test=0)


def refused(outcome: Outcome, *words: str) -> str:
    """Asserts a one-line refusal (exit 2, no traceback) holding every one of `words`."""
    assert outcome.code == 2, (outcome.code, outcome.stderr[-2000:])
    assert "Traceback" not in outcome.stderr + outcome.stdout
    for word in words:
        assert word in outcome.error_line, (word, outcome.error_line)
    return outcome.error_line


def write_yaml(folder: Path, text: str) -> Path:
    path = folder / "data.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- numbers that cannot be right


@pytest.mark.parametrize("args, words", [
    (["train", "--batch", "0"], ["--batch", "positive integer", "got 0"]),
    (["train", "--epochs", "ten"], ["--epochs", "integer", "'ten'"]),
    (["train", "--img", "-64"], ["--img", "positive integer"]),
    (["train", "--workers", "-1"], ["--workers", "0 or more"]),
    (["val", "--weights", "best.pt", "--conf", "2"], ["--conf", "between 0 and 1", "got 2"]),
    (["predict", "--weights", "best.pt", "--source", ".", "--iou", "1.5"], ["--iou", "between 0 and 1"]),
    (["prune", "--weights", "best.pt", "--amount", "1.5"], ["--amount", "between 0 and 1", "1.5"]),
    (["export", "--weights", "best.pt", "--batch", "0"], ["--batch", "positive integer"]),
    (["export", "--weights", "best.pt", "--include", "tflite"], ["tflite", "onnx, engine, wts"]),
])
def test_impossible_numbers_and_formats_are_refused_while_parsing(newcomer, args, words):
    refused(newcomer(*args), *words)


# ---------------------------------------------------------------- files that are not there or not the kind


@pytest.mark.parametrize("args, words", [
    (["train", "--weights", "yolov5s.pt"], ["--weights yolov5s.pt does not exist", "nothing is downloaded"]),
    (["train", "--resume", "runs/train/exp/weights/last.pt"], ["--resume", "does not exist", "last.pt"]),
    (["train", "--hyp", "hyp.scratch-low.yaml"], ["--hyp hyp.scratch-low.yaml does not exist", "hyperparameter yaml"]),
    (["val", "--weights", "best.pt"], ["--weights best.pt does not exist", "YOLOv5 .pt"]),
    (["predict", "--weights", "best.pt", "--source", "images/"], ["--weights best.pt does not exist"]),
    (["prune", "--weights", "best.pt"], ["--weights best.pt does not exist"]),
    (["export", "--weights", "best.pt"], ["--weights best.pt does not exist"]),
    (["convert", "yolov5s.pt", "-o", "out.pt"], ["yolov5s.pt does not exist", "YOLOv5 .pt"]),
    (["train", "--data", "coco128.yaml"], ["data yaml not found: coco128.yaml"]),
])
def test_a_file_that_is_not_there_is_named_with_its_flag(newcomer, args, words):
    line = refused(newcomer(*args), *words)
    assert not (newcomer.folder / "runs").exists(), line  # refused before a run folder was made


def test_a_folder_given_as_the_data_yaml_names_the_yamls_inside(newcomer, tiny_data):
    line = refused(newcomer("train", "--data", tiny_data.parent), str(tiny_data.parent), "is a folder", "data.yaml")
    assert SCAN_LINE not in line


def test_a_weights_folder_is_not_weights(newcomer, tmp_path):
    refused(newcomer("val", "--weights", tmp_path), f"--weights {tmp_path} is a folder")


def test_a_file_that_is_not_a_checkpoint_is_refused_before_the_data_is_scanned(newcomer, tiny_data):
    (newcomer.folder / "notes.pt").write_text("not a checkpoint")
    outcome = newcomer("train", "--data", tiny_data, "--weights", "notes.pt", "--epochs", "1", "--img", "64")
    refused(outcome, "notes.pt", "cannot be read as a checkpoint")
    assert SCAN_LINE not in outcome.stderr


# ---------------------------------------------------------------- data yamls


def test_a_data_yaml_path_that_does_not_exist_is_named_as_written(newcomer, tiny_data, tmp_path):
    yaml_path = write_yaml(tmp_path, f"path: /nonexistent/datasets/shapes\ntrain: {tiny_data.parent}/images/train\n"
                                     f"val: {tiny_data.parent}/images/val\nnames: [a, b, c, d]\n")
    outcome = newcomer("train", "--data", yaml_path, "--epochs", "1")
    refused(outcome, f"{yaml_path}: path: /nonexistent/datasets/shapes does not exist")
    assert SCAN_LINE not in outcome.stderr


def test_a_relative_data_yaml_path_says_where_it_was_looked_for(newcomer, tmp_path):
    yaml_path = write_yaml(tmp_path, "path: ../datasets/coco128\ntrain: images\nval: images\nnames: [a]\n")
    refused(newcomer("val", "--weights", SHIPPED, "--data", yaml_path),
            "path: ../datasets/coco128 does not exist", str(tmp_path / "../datasets/coco128"))


def test_an_empty_images_folder_is_refused_when_the_yaml_is_read(newcomer, tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    yaml_path = write_yaml(tmp_path, "path: .\ntrain: images/train\nval: images/train\nnames: [a]\n")
    outcome = newcomer("train", "--data", yaml_path, "--epochs", "1")
    refused(outcome, "'train' (images/train) holds no images", ".jpg")
    assert SCAN_LINE not in outcome.stderr


def test_a_yaml_syntax_error_is_one_line_with_its_line_number(newcomer, tmp_path):
    yaml_path = write_yaml(tmp_path, "path: .\ntrain: [images\nval: images\n")
    refused(newcomer("train", "--data", yaml_path), str(yaml_path), "not valid YAML", "line 2, column 8")


def test_an_unknown_model_size_is_refused_before_the_data_is_scanned(newcomer, tiny_data):
    outcome = newcomer("train", "--data", tiny_data, "--cfg", "yolov5q", "--epochs", "1")
    refused(outcome, "unknown model 'yolov5q'", "yolov5n, yolov5s")
    assert SCAN_LINE not in outcome.stderr


@pytest.mark.skipif(torch.cuda.device_count() > 5, reason="this machine has a GPU 5")
@pytest.mark.parametrize("command", [["train", "--epochs", "1"], ["val", "--weights", str(SHIPPED)],
                                     ["predict", "--weights", str(SHIPPED), "--source", "."]])
def test_a_gpu_that_is_not_there_is_refused_first(newcomer, tiny_data, command):
    outcome = newcomer(*command, "--data", tiny_data, "--device", "5") if command[0] != "predict" else \
        newcomer(*command, "--device", "5")
    refused(outcome, "--device 5", "GPU 5 does not exist", "use --device cpu" if not torch.cuda.is_available() else "")
    assert SCAN_LINE not in outcome.stderr


def test_predict_on_an_empty_folder_says_which_images_it_looks_for(newcomer):
    (newcomer.folder / "images").mkdir()
    refused(newcomer("predict", "--weights", SHIPPED, "--source", "images"), "no images", ".jpg", "under images")


# ---------------------------------------------------------------- weights and data that do not belong together


def test_val_refuses_weights_of_another_class_count_before_scanning(newcomer, tmp_path, tiny_data):
    yaml_path = write_yaml(tmp_path, f"train: {tiny_data.parent}/images/train\nval: {tiny_data.parent}/images/val\n"
                                     "names: [car]\n")
    outcome = newcomer("val", "--weights", SHIPPED, "--data", yaml_path)
    refused(outcome, str(SHIPPED), "predicts 4 classes", "names 1")
    assert SCAN_LINE not in outcome.stderr


@pytest.mark.skipif(not (YOLOV5N.is_file() and VEHICLES.is_file()), reason="needs the shared yolov5n.pt and vehicles")
def test_val_refuses_yolov5n_on_the_vehicles_data(newcomer):
    outcome = newcomer("val", "--weights", YOLOV5N, "--data", VEHICLES)
    refused(outcome, "predicts 80 classes", f"{VEHICLES} names 5")
    assert SCAN_LINE not in outcome.stderr


def test_convert_says_an_evolver_checkpoint_needs_no_conversion(newcomer):
    line = refused(newcomer("convert", SHIPPED, "-o", "again.pt"), str(SHIPPED), "already an evolver checkpoint",
                   "needs no conversion")
    assert "no YOLOv5 detection model" not in line
    assert not (newcomer.folder / "again.pt").exists()


# ---------------------------------------------------------------- sizes rounded up, as YOLOv5 does


def rounding_warning(outcome: Outcome, given: int, used: int) -> None:
    assert outcome.code == 0, outcome.stderr[-3000:]
    assert "Traceback" not in outcome.stderr
    warnings = [line for line in outcome.stderr.splitlines() if "WARNING" in line and "--img" in line]
    assert len(warnings) == 1 and f"--img {given} " in warnings[0] and f"using {used}" in warnings[0], warnings


def test_train_rounds_the_image_size_up_and_fine_tunes_its_own_architecture_quietly(newcomer, tiny_data):
    outcome = newcomer("train", "--data", tiny_data, "--weights", SHIPPED, "--img", "40", "--epochs", "1",
                       "--batch", "2", "--workers", "0", "--quiet")
    rounding_warning(outcome, 40, 64)
    assert "img 64" in outcome.stderr and "1 epochs in" in outcome.stdout
    transfer = next(line for line in outcome.stderr.splitlines() if "transferred" in line)
    fitted = int(transfer.split("transferred ")[1].split("/")[0])
    assert fitted >= 0.9 * 349 and "tensors fit" not in outcome.stderr  # all but the anchors, fitted anew


def test_val_and_predict_round_the_image_size_up(newcomer, tiny_data):
    rounding_warning(newcomer("val", "--weights", SHIPPED, "--data", tiny_data, "--img", "50", "--workers", "0"), 50, 64)
    outcome = newcomer("predict", "--weights", SHIPPED, "--source", tiny_data.parent / "images" / "val", "--img", "33")
    rounding_warning(outcome, 33, 64)
    assert "2 image(s)" in outcome.stdout


def test_export_rounds_each_side_up(newcomer):
    outcome = newcomer("export", "--weights", SHIPPED, "--include", "onnx", "--img", "50", "--out", "exported")
    assert outcome.code == 0, outcome.stderr[-3000:]
    graph = pytest.importorskip("onnx").load(str(newcomer.folder / "exported" / "yolov5n-shapes.onnx")).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
    assert "--img 50 is not a multiple of the largest stride 32: using 64" in outcome.stderr


# ---------------------------------------------------------------- fine-tuning another architecture


def test_weights_of_another_architecture_than_cfg_warn_in_one_line(newcomer, tiny_data):
    outcome = newcomer("train", "--data", tiny_data, "--weights", SHIPPED, "--cfg", "yolov5s", "--img", "32",
                       "--epochs", "1", "--batch", "2", "--workers", "0", "--quiet")
    assert outcome.code == 0, outcome.stderr[-3000:]
    warnings = [line for line in outcome.stderr.splitlines() if "WARNING" in line and "tensors fit" in line]
    assert len(warnings) == 1, outcome.stderr[-3000:]
    assert "are a yolov5n but cfg is yolov5s" in warnings[0] and "/349 tensors fit" in warnings[0]
    fitted = int(warnings[0].split("only ")[1].split("/")[0])
    assert fitted < 0.9 * 349
