"""The demo campaign `make demo` submits: a valid spec that fine-tunes the shipped checkpoint on the
shifted synthetic task, with paths that resolve wherever the repository is checked out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evolver.campaign import CampaignSpec, names_a_file
from yolo.synthetic import resolve_data
from yolo.synthetic import BUILTIN_DATASETS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO = EXAMPLES / "synthetic-campaign.yaml"


def test_demo_spec_validates_and_points_at_the_shipped_checkpoint():
    spec = CampaignSpec.from_yaml(DEMO)
    spec.check_files()
    assert spec.weights == str((EXAMPLES / "yolov5n-shapes.pt").resolve()) and Path(spec.weights).is_file()
    assert spec.data == "synthetic-shifted" and spec.data in BUILTIN_DATASETS
    assert spec.cfg == "yolov5n" and spec.trainer == "yolo"
    raw = yaml.safe_load(DEMO.read_text())
    assert not Path(raw["weights"]).is_absolute()  # relative to the yaml: works from any checkout


def test_builtin_data_names_are_not_files(tmp_path: Path):
    assert not names_a_file("data", "synthetic-shifted") and names_a_file("data", "data.yaml")
    assert names_a_file("weights", "synthetic-shifted")  # only `data` has built-in names
    spec = CampaignSpec(data="synthetic-shifted").resolved(tmp_path)
    assert spec.data == "synthetic-shifted"  # not turned into a path
    with pytest.raises(ValueError, match="synthetic-shifted"):
        CampaignSpec(data="synthetic-elsewhere")


def test_workers_resolve_builtin_names_and_pass_paths_through(monkeypatch, tmp_path: Path):
    made = []
    monkeypatch.setattr("yolo.synthetic.builtin_dataset", lambda name: made.append(name) or tmp_path / "data.yaml")
    assert resolve_data("synthetic-shifted") == str(tmp_path / "data.yaml") and made == ["synthetic-shifted"]
    assert resolve_data("/data/coco.yaml") == "/data/coco.yaml" and made == ["synthetic-shifted"]


def test_make_demo_uploads_the_checkpoint_path_beside_the_yaml():
    from api.security import resolve_inside
    from api.serve_cli import upload_of

    uploaded = yaml.safe_load(upload_of(str(DEMO)))
    assert uploaded["weights"] == str(EXAMPLES / "yolov5n-shapes.pt") and uploaded["data"] == "synthetic-shifted"
    # the server's default data roots include the working directory (`make demo` runs in the repo)
    assert resolve_inside(uploaded["weights"], [EXAMPLES.parent.resolve()]).is_file()
    assert {k: v for k, v in uploaded.items() if k != "weights"} == \
        {k: v for k, v in yaml.safe_load(DEMO.read_text()).items() if k != "weights"}
