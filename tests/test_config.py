"""Judge SPECs and YAML judge configs."""

import pytest

from lm_eval_pandalm.config import ConfigError
from lm_eval_pandalm.judges import make_judge


def test_unknown_yaml_key_is_an_error_listing_valid_keys(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text("type: replay\nname: GPT-4\nstrategie: CoT\n")
    with pytest.raises(ConfigError) as excinfo:
        make_judge(str(path))
    message = str(excinfo.value)
    assert str(path) in message and "'strategie'" in message
    assert "Did you mean 'strategy'?" in message and "benchmarks, name, strategy" in message


def test_yaml_needs_a_known_type(tmp_path):
    path = tmp_path / "judge.yml"
    path.write_text("type: gpt5\nname: x\n")
    with pytest.raises(ConfigError, match="'type' must be one of pandalm, replay"):
        make_judge(str(path))


def test_wrong_value_type_is_an_error(tmp_path):
    path = tmp_path / "judge.yaml"
    path.write_text("type: replay\nname: GPT-4\nbenchmarks: llmbar-natural\n")
    with pytest.raises(ConfigError, match="'benchmarks'"):
        make_judge(str(path))


@pytest.mark.parametrize("spec", ["gpt4", "unknown:x", "pandalm:", "replay"])
def test_bad_spec_says_what_is_valid(spec):
    with pytest.raises(ConfigError, match="pandalm:<model id or path>"):
        make_judge(spec)
