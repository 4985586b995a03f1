from pathlib import Path

import pytest
import yaml

from unetseg.errors import UserError
from unetseg.params import Params, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_shipped_params_are_valid_and_complete():
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    params = parse_params(shipped)
    assert params.model_dump(mode="json").keys() == shipped.keys()
    assert params.base.seed == shipped["base"]["seed"]


def test_defaults_validate():
    assert Params().extract.patch_size % 2 ** Params().model.depth == 0


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"extract": {"patchsize": 64}}, "unknown key 'extract.patchsize'"),
        ({"trian": {}}, "unknown key 'trian'"),
        ({"train": {"epochs": "many"}}, "train.epochs: Input should be a valid integer"),
        ({"train": {"learning_rate": -1}}, "train.learning_rate: Input should be greater than 0"),
        ({"augment": {"elastic": {"p": 1.5}}}, "augment.elastic.p: Input should be less than or equal to 1"),
        ({"model": {"upsampling": "nearest"}}, "model.upsampling: Input should be 'transpose' or 'bilinear'"),
        ({"extract": {"patch_size": 100}}, "extract.patch_size=100 must be divisible by 2**model.depth = 16"),
        ({"predict": {"tile_size": 100}, "model": {"depth": 3}}, "predict.tile_size=100 must be divisible by 2**model.depth = 8"),
        ({"prepare": {"val_fraction": 0.5, "test_fraction": 0.5}}, "prepare: val_fraction + test_fraction must be < 1"),
        ({"synthesize": {"min_size": 300, "max_size": 200}}, "synthesize: min_size must be <= max_size"),
    ],
)
def test_bad_params_name_the_key(raw, expected):
    with pytest.raises(UserError) as info:
        parse_params(raw)
    message = str(info.value)
    assert message.startswith("params.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_patch_size_error_suggests_a_fix():
    with pytest.raises(UserError, match="try 96"):
        parse_params({"extract": {"patch_size": 100}})


def test_load_params_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_params(bad)


def test_empty_params_file_means_defaults(tmp_path):
    empty = tmp_path / "params.yaml"
    empty.write_text("")
    assert load_params(empty) == Params()
