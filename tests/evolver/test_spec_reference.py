"""examples/campaign-reference.yaml is what evolver/spec_reference.py writes from CampaignSpec
today (so it cannot drift from the model), names every field of the model and its nested blocks,
and loads as a campaign equal to the defaults; a changed model changes the reference."""

from __future__ import annotations

from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, Field

from evolver.campaign import CampaignSpec
from evolver.spec_reference import REFERENCE_PATH, REGENERATE, main, render


def field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """'name', 'confirm.top_k', …: every field of the model, nested models' fields included."""
    paths = set()
    for name, field in model.model_fields.items():
        nested = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) \
            else None
        paths |= field_paths(nested, f"{prefix}{name}.") if nested else {prefix + name}
    return paths


def key_paths(row: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in row.items():
        paths |= key_paths(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {prefix + key}
    return paths


def test_the_committed_reference_is_what_the_model_gives():
    assert REFERENCE_PATH.is_file(), f"{REFERENCE_PATH} is missing: run `{REGENERATE}` to regenerate it"
    assert REFERENCE_PATH.read_text() == render(), (
        f"{REFERENCE_PATH.name} is out of date with evolver/campaign.py: run `{REGENERATE}` to regenerate it")


def test_the_reference_names_every_field_and_loads_as_the_default_campaign():
    row = yaml.safe_load(REFERENCE_PATH.read_text())
    assert key_paths(row) == field_paths(CampaignSpec)
    assert {"confirm.top_k", "early_stopping.rule", "trainer", "dry_run_seconds", "exports"} <= key_paths(row)
    loaded = CampaignSpec.from_yaml(REFERENCE_PATH)
    assert loaded == CampaignSpec().resolved(REFERENCE_PATH.parent)


def test_every_described_field_carries_its_description():
    text = " ".join(line.strip().lstrip("# ") for line in REFERENCE_PATH.read_text().splitlines())
    for model in (CampaignSpec, *(f.annotation for f in CampaignSpec.model_fields.values()
                                  if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))):
        for name, field in model.model_fields.items():
            if field.description:
                assert field.description[1:] in text, name


class Warmup(BaseModel):
    """How the learning rate warms up."""

    epochs: float = Field(3.0, ge=0.0, lt=50.0, description="epochs of learning-rate warm-up")
    bias_lr: float | None = None


class ChangedSpec(BaseModel):
    """A campaign model as another engineer might change it: freeze takes a count too, new fields."""

    freeze: int | tuple[int, ...] = Field(0, description="freeze the first n layers, or these indices")
    rect: Literal["off", "val"] = "off"
    warmup: Warmup = Warmup()


def test_a_changed_model_changes_the_reference():
    text = render(ChangedSpec)
    assert "# Freeze the first n layers, or these indices\n# int or list of int. Default: 0\nfreeze: 0\n" in text
    assert "# one of: 'off', val. Default: 'off'\nrect: 'off'\n" in text  # YAML would read a bare off as false
    assert "# How the learning rate warms up.\nwarmup:\n  # Epochs of learning-rate warm-up\n" in text
    assert "  # float, 0.0 <= epochs < 50.0. Default: 3.0\n  epochs: 3.0\n" in text
    assert "  # float or null. Default: null\n  bias_lr: null\n" in text
    assert ChangedSpec.model_validate(yaml.safe_load(text)) == ChangedSpec()


def test_a_field_without_a_default_is_refused_by_name():
    class Needy(BaseModel):
        data: str

    with pytest.raises(ValueError, match="data has none"):
        render(Needy)


def test_check_names_the_command_when_the_file_is_stale(tmp_path, capsys):
    out = tmp_path / "reference.yaml"
    assert main(["--out", str(out)]) == 0 and out.read_text() == render()
    assert main(["--check", "--out", str(out)]) == 0
    out.write_text(render().replace("epochs: 10\n", "epochs: 12\n"))
    assert main(["--check", "--out", str(out)]) == 1
    assert f"run `{REGENERATE}` to regenerate" in capsys.readouterr().err
