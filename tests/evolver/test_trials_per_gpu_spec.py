"""`trials_per_gpu` in the campaign spec and `--trials-per-gpu` on the command line: what is refused,
and how. (Scheduling on fake GPUs: tests/workers/test_trials_per_gpu.py.)"""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from evolver.campaign import CampaignSpec, format_validation_error
from evolver.cli import main
from evolver.store import Store


def test_one_trial_per_gpu_unless_the_spec_says_more():
    assert CampaignSpec().trials_per_gpu == 1
    assert CampaignSpec(trials_per_gpu=4).trials_per_gpu == 4
    assert CampaignSpec.model_validate(CampaignSpec(trials_per_gpu=3).to_json_dict()).trials_per_gpu == 3


@pytest.mark.parametrize(("value", "problem"), [
    (0, "greater than or equal to 1"), (-2, "greater than or equal to 1"), (1.5, "fractional part"),
    (True, "an integer >= 1"), ("two", "valid integer"), (65, "less than or equal to 64"),
])
def test_spec_refuses_a_count_below_one_or_not_whole_naming_the_field(value, problem):
    with pytest.raises(ValidationError) as caught:
        CampaignSpec(trials_per_gpu=value)
    (line,) = format_validation_error(caught.value).splitlines()
    assert line.startswith("trials_per_gpu: ") and problem in line, line


def test_cli_refuses_a_bad_spec_value_and_flag_before_storing_anything(tmp_path, capsys):
    db = Store.sqlite_url(tmp_path / "evolver.db")
    spec = tmp_path / "zero.yaml"
    spec.write_text(yaml.safe_dump({"name": "zero", "trainer": "sleep", "trials_per_gpu": 0}))
    assert main(["run", str(spec), "--db", db, "--project", str(tmp_path)]) == 2
    assert f"{spec}: trials_per_gpu: Input should be greater than or equal to 1, got 0" in capsys.readouterr().err

    spec.write_text(yaml.safe_dump({"name": "fine", "trainer": "sleep"}))
    for command in (["run", str(spec)], ["resume", "1"]):
        assert main([*command, "--trials-per-gpu", "0", "--db", db, "--project", str(tmp_path)]) == 2
        assert "--trials-per-gpu must be 1 to 64, got 0" in capsys.readouterr().err
    assert Store.open(db).campaigns() == []


def test_help_says_the_flag_is_for_this_run_only(capsys):
    for command in ("run", "resume"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--trials-per-gpu N" in text and "for this run only" in text, command
