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


def test_defaults_leave_the_planned_knobs_to_the_plan():
    params = Params()
    planned = [params.extract.patch_size, params.extract.stride, params.extract.fg_fraction, params.model.depth,
               params.model.base_filters, params.train.epochs, params.train.steps_per_epoch,
               params.train.batch_size, params.train.loss, params.predict.tile_size]
    assert planned == ["auto"] * len(planned)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"extract": {"patchsize": 64}}, "unknown key 'extract.patchsize'"),
        ({"trian": {}}, "unknown key 'trian'"),
        ({"train": {"epochs": "many"}}, "train.epochs: must be auto (the plan decides) or a valid integer"),
        ({"train": {"epochs": 0}}, "train.epochs: must be auto (the plan decides) or greater than or equal to 1"),
        ({"train": {"loss": "focal"}}, "train.loss: must be auto (the plan decides) or 'dice', 'bce' or 'bce_dice'"),
        ({"train": {"learning_rate": -1}}, "train.learning_rate: Input should be greater than 0"),
        ({"augment": {"elastic": {"p": 1.5}}}, "augment.elastic.p: Input should be less than or equal to 1"),
        ({"model": {"upsampling": "nearest"}}, "model.upsampling: Input should be 'transpose' or 'bilinear'"),
        ({"extract": {"patch_size": 100}, "model": {"depth": 4}}, "extract.patch_size=100 must be divisible by 2**model.depth = 16"),
        ({"extract": {"patch_size": 64, "stride": 65}}, "extract: stride must be <= patch_size (64)"),
        ({"predict": {"tile_size": 100}, "model": {"depth": 3}}, "predict.tile_size=100 must be divisible by 2**model.depth = 8"),
        ({"prepare": {"val_fraction": 0.5, "test_fraction": 0.5}}, "prepare: val_fraction + test_fraction must be < 1"),
        ({"synthesize": {"min_size": 300, "max_size": 200}}, "synthesize: min_size must be <= max_size"),
        ({"data": {"target": "weighted", "contact_weight": 10}}, "data: contact_weight weights the boundary target's"),
        ({"predict": {"seeds": "peaks"}}, "predict.seeds: Input should be 'auto', 'maxima' or 'threshold'"),
        ({"predict": {"seed_depth": 1.5}}, "predict.seed_depth: must be auto (the plan decides) or less than 1"),
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
        parse_params({"extract": {"patch_size": 100}, "model": {"depth": 4}})


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


def test_tta_written_as_the_old_switch_still_means_what_it_meant():
    assert parse_params({"predict": {"tta": True}}).predict.tta == "flips"
    assert parse_params({"predict": {"tta": False}}).predict.tta == "none"
    with pytest.raises(UserError, match="predict.tta"):
        parse_params({"predict": {"tta": "rotations"}})
