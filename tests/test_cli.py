"""The installed `unetseg` command, run as a user would: from a folder outside the repository."""

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stage_runner import error_line
from unetseg import cli

UNETSEG = Path(sys.executable).with_name("unetseg")  # the console script pip installed beside python


def unetseg(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([str(UNETSEG), *args], cwd=cwd, env=env, capture_output=True, text=True)


def unetseg_in_process(cwd: Path, *args: str, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """The command run in this process, as `unetseg` would return it, without a TensorFlow start-up per call."""
    monkeypatch.chdir(cwd)
    try:
        cli.main(list(args))
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_help_is_instant_and_lists_every_command(tmp_path):
    started = time.perf_counter()
    result = unetseg(tmp_path, "--help")
    assert time.perf_counter() - started < 1.0  # no TensorFlow before a command needs it
    assert result.returncode == 0 and all(name in result.stdout for name in ("predict", "evaluate", "info"))
    flags = unetseg(tmp_path, "predict", "--help").stdout
    assert "--tile-size {auto,int}" in flags and "--blend {gaussian,constant}" in flags
    assert "--tta {none,flips,dihedral}" in flags and "(default: 0.5)" in flags
    assert "--seeds {auto,maxima,threshold}" in flags and "--seed-sigma {auto,float}" in flags


def test_predict_from_outside_the_repository_on_a_folder_and_on_one_file(tiny_run, tmp_path):
    rng = np.random.default_rng(0)
    save(tmp_path / "new/a.png", rng.integers(0, 255, (40, 50), dtype=np.uint8))
    save(tmp_path / "new/b.tif", rng.integers(0, 255, (23, 71), dtype=np.uint8))
    model = str(tiny_run / "models/unet.keras")
    result = unetseg(tmp_path, "predict", "--model", model, "--input", "new", "--output", "out")
    assert result.returncode == 0, result.stderr
    assert "2 image(s) -> 9 files in out/" in result.stdout
    native = [line for line in result.stderr.splitlines() if line[:5] in ("I0000", "W0000", "E0000") or "absl" in line]
    assert not native, "TensorFlow's start-up noise reached stderr"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.png", "a_instances.png", "a_objects.csv", "a_prob.png", "b.png", "b_instances.png", "b_objects.csv", "b_prob.png",
        "summary.csv"]
    assert np.asarray(Image.open(tmp_path / "out/b.png")).shape == (23, 71)
    summary = read_rows(tmp_path / "out/summary.csv")
    assert [row["image"] for row in summary] == ["a", "b"]  # a row per image, as the measure stage's summary
    for row in summary:
        objects = read_rows(tmp_path / f"out/{row['image']}_objects.csv")
        assert int(row["objects"]) == len(objects)
        assert int(row["objects_touching_edge"]) == sum(int(o["touches_edge"]) for o in objects)
    result = unetseg(tmp_path, "predict", "--model", model, "--input", "new/a.png", "--output", "one")
    assert result.returncode == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["a.png", "a_instances.png", "a_objects.csv",
                                                                    "a_prob.png", "summary.csv"]


def test_predict_flags_override_the_params(tiny_run, tmp_path):
    save(tmp_path / "a.png", np.random.default_rng(0).integers(0, 255, (30, 40), dtype=np.uint8))
    model = str(tiny_run / "models/unet.keras")
    args = ["predict", "--model", model, "--input", "a.png", "--threshold", "0.999", "--tile-size", "16",
            "--tta", "flips", "--max-whole-pixels", "0"]
    assert unetseg(tmp_path, *args, "--output", "high").returncode == 0
    assert np.asarray(Image.open(tmp_path / "high/a.png")).max() == 0  # an untrained net is never that sure
    args = ["predict", "--model", model, "--input", "a.png", "--prob-dtype", "float16", "--output", "f16"]
    assert unetseg(tmp_path, *args).returncode == 0
    assert np.load(tmp_path / "f16/a_prob.npy").shape == (30, 40)


def test_predict_measures_in_microns_given_the_pixel_size_or_as_the_tiff_records_it(tiny_run, tmp_path, monkeypatch, capsys):
    save(tmp_path / "a.png", np.random.default_rng(0).integers(0, 255, (30, 40), dtype=np.uint8))
    model = str(tiny_run / "models/unet.keras")
    args = ["predict", "--model", model, "--input", "a.png", "--threshold", "0.01"]  # objects from an untrained net
    result = unetseg_in_process(tmp_path, *args, "--output", "um", "--pixel-size", "0.5",
                                monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "um/a_objects.csv")
    assert rows and all(float(row["area_um2"]) == pytest.approx(int(row["area_px"]) / 4, abs=1e-4) for row in rows)
    assert float(read_rows(tmp_path / "um/summary.csv")[0]["pixel_size_um"]) == 0.5
    result = unetseg_in_process(tmp_path, *args, "--output", "bad", "--pixel-size", "0",
                                monkeypatch=monkeypatch, capsys=capsys)
    assert not (tmp_path / "bad").exists()
    assert error_line(result).startswith("error: --pixel-size: measure.pixel_size: ")
    import tifffile

    tifffile.imwrite(tmp_path / "b.tif", np.asarray(Image.open(tmp_path / "a.png")), imagej=True,
                     resolution=(4, 4), metadata={"unit": "um"})  # as Fiji saves a calibrated image
    args = ["predict", "--model", model, "--input", "b.tif", "--threshold", "0.01", "--output", "own"]
    assert unetseg_in_process(tmp_path, *args, monkeypatch=monkeypatch, capsys=capsys).returncode == 0
    rows = read_rows(tmp_path / "own/b_objects.csv")
    assert rows and all(float(row["area_um2"]) == pytest.approx(int(row["area_px"]) / 16, abs=1e-4) for row in rows)


def test_predict_takes_the_pipelines_postprocessing_for_its_model_only(tiny_run, tmp_path, monkeypatch, capsys):
    model = tiny_run / "models/unet.keras"
    chosen = json.loads((tiny_run / "data/predictions/postprocess.json").read_text())
    assert chosen["model_md5"] == hashlib.md5(model.read_bytes()).hexdigest()
    image = next((tiny_run / "data/synthetic/images").iterdir())
    (tmp_path / image.name).write_bytes(image.read_bytes())
    nothing_kept = {**chosen, "predict.min_object_size": 10**6}
    (tmp_path / "ours.json").write_text(json.dumps(nothing_kept))
    (tmp_path / "other.json").write_text(json.dumps({**nothing_kept, "model_md5": "0" * 32}))

    def objects(output: str, *flags: str, cwd: Path = tmp_path) -> tuple[str, bytes]:
        result = unetseg_in_process(cwd, "predict", "--model", str(model), "--input", str(tmp_path / image.name),
                                    "--output", str(tmp_path / output), *flags, monkeypatch=monkeypatch, capsys=capsys)
        assert result.returncode == 0, result.stderr
        return result.stdout, (tmp_path / output / f"{image.stem}_instances.png").read_bytes()

    said, ours = objects("ours", "--postprocess", "ours.json")
    assert "as the pipeline chose it for this model (ours.json)" in said
    assert np.asarray(Image.open(tmp_path / f"ours/{image.stem}_instances.png")).max() == 0
    said, other = objects("other", "--postprocess", "other.json")
    assert "the defaults (other.json was chosen for another model)" in said
    said, missing = objects("missing", "--postprocess", "missing.json")
    assert "the defaults (missing.json not found)" in said and missing == other
    _, pinned = objects("pinned", "--postprocess", "ours.json", "--min-object-size", "0", "--seed-sigma", "2",
                        "--seed-depth", "0.05")
    assert pinned == missing  # a flag wins over the choice
    said, _ = objects("in_project", cwd=tiny_run)  # the default: the project's own choice
    assert "as the pipeline chose it for this model (data/predictions/postprocess.json)" in said


def test_predict_tiles_as_the_stage_did_for_its_model(tiny_run, tmp_path, monkeypatch, capsys):
    from unetseg.inference import auto_defaults

    chosen = json.loads((tiny_run / "data/predictions/postprocess.json").read_text())
    assert chosen["predict.tile_size"] == 32  # the stage's tile (TINY pins it; else the plan's)
    image = next((tiny_run / "data/synthetic/images").iterdir())
    model = str(tiny_run / "models/unet.keras")
    choice = str(tiny_run / "data/predictions/postprocess.json")

    def probabilities(output: str, *flags: str) -> bytes:
        result = unetseg_in_process(tmp_path, "predict", "--model", model, "--input", str(image), "--output", output,
                                    "--max-whole-pixels", "0", *flags, monkeypatch=monkeypatch, capsys=capsys)
        assert result.returncode == 0, result.stderr
        return (tmp_path / output / f"{image.stem}_prob.png").read_bytes()

    assert probabilities("auto", "--postprocess", choice) == probabilities("pinned", "--tile-size", "32",
                                                                          "--postprocess", choice)
    assert probabilities("auto", "--postprocess", choice) != probabilities("default", "--postprocess", "none.json")
    assert auto_defaults(2.0)["seed_sigma"] == auto_defaults()["seed_sigma"] / 2  # in the network's pixels


def test_predict_grows_the_objects_in_worker_processes_with_the_same_bytes(tiny_run, tmp_path, monkeypatch, capsys):
    from unetseg import inference

    for image in sorted((tiny_run / "data/synthetic/images").iterdir())[:3]:
        (tmp_path / "new").mkdir(exist_ok=True)
        (tmp_path / "new" / image.name).write_bytes(image.read_bytes())
    model = str(tiny_run / "models/unet.keras")

    def predicted(output: str) -> dict[str, bytes]:
        result = unetseg_in_process(tmp_path, "predict", "--model", model, "--input", "new", "--output", output,
                                    monkeypatch=monkeypatch, capsys=capsys)
        assert result.returncode == 0, result.stderr
        return {path.name: path.read_bytes() for path in (tmp_path / output).iterdir()}

    alone = predicted("alone")
    made, real = [], inference.worker_pool
    monkeypatch.setattr(inference, "POOL_MIN_PIXELS", 0)  # workers even for tiny images
    monkeypatch.setattr(inference, "worker_pool", lambda tasks, method=None: made.append((tasks, method)) or
                        real(tasks, method))
    assert predicted("workers") == alone and len(alone) == 13  # 4 files an image, and the summary
    assert made == [(3, "spawn")]


def bad_model_files(tmp_path: Path, model: Path) -> dict[str, Path]:
    (tmp_path / "garbage.keras").write_bytes(b"not a zip at all")
    zipfile.ZipFile(tmp_path / "empty.keras", "w").close()
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone/unet.keras").write_bytes(model.read_bytes())  # no preprocessing.json beside it
    return {"garbage": tmp_path / "garbage.keras", "empty": tmp_path / "empty.keras",
            "alone": tmp_path / "alone/unet.keras"}


def test_predict_errors_are_one_line_and_write_nothing(tiny_run, tmp_path, monkeypatch, capsys):
    model = str(tiny_run / "models/unet.keras")
    bad = bad_model_files(tmp_path, tiny_run / "models/unet.keras")
    save(tmp_path / "twice/a.png", np.zeros((8, 8), np.uint8))
    save(tmp_path / "twice/a.tif", np.zeros((8, 8), np.uint8))
    save(tmp_path / "good.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "bad.json").write_text("[1, 2")
    cases = [
        (["--model", model, "--input", "missing"], "missing: no such file or folder"),
        (["--model", model, "--input", "empty"], "empty: no images"),
        (["--model", model, "--input", "bad.png"], "bad.png: cannot read image"),
        (["--model", "nope.keras", "--input", "good.png"], "nope.keras: model not found"),
        (["--model", str(bad["garbage"]), "--input", "good.png"], "garbage.keras: not a Keras model file"),
        (["--model", str(bad["empty"]), "--input", "good.png"], "empty.keras: an incomplete Keras model file"),
        (["--model", str(bad["alone"]), "--input", "good.png"], "preprocessing.json: not found beside the model"),
        (["--model", model, "--input", "twice"], "twice: several images named a.*"),
        (["--model", model, "--input", "good.png", "--overlap", "1.5"], "flags: predict.overlap: Input should be less than 1"),
        (["--model", model, "--input", "good.png", "--postprocess", "bad.json"], "bad.json: not a post-processing choice"),
    ]
    for args, expected in cases:
        result = unetseg_in_process(tmp_path, "predict", *args, "--output", "o", monkeypatch=monkeypatch, capsys=capsys)
        assert expected in error_line(result), args
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    result = unetseg(tmp_path, "predict", "--model", model, "--input", "good.png", "--output", "a_file/out")
    assert "a_file is a file, not a folder" in error_line(result)


def test_predict_failing_part_way_leaves_the_output_folder_as_it_was(tiny_run, tmp_path):
    """An image that fails after others were predicted (its header reads, its pixels do not): the
    output folder keeps what it held, gains none of the other images' files, and no staging folder
    is left; headers that cannot be read fail before the model loads."""
    rng = np.random.default_rng(0)
    save(tmp_path / "new/a.png", rng.integers(0, 255, (40, 50), dtype=np.uint8))
    whole = save(tmp_path / "new/b.png", rng.integers(0, 255, (64, 64), dtype=np.uint8)).read_bytes()
    (tmp_path / "new/b.png").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "out").mkdir()
    (tmp_path / "out/a.png").write_bytes(b"an earlier prediction")
    model = str(tiny_run / "models/unet.keras")
    result = unetseg(tmp_path, "predict", "--model", model, "--input", "new", "--output", "out")
    assert result.returncode != 0 and "b.png: cannot read image (image file is truncated)" in error_line(result)
    assert [(p.name, p.read_bytes()) for p in (tmp_path / "out").iterdir()] == [("a.png", b"an earlier prediction")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"]
    (tmp_path / "new/b.png").write_bytes(whole)
    result = unetseg(tmp_path, "predict", "--model", model, "--input", "new", "--output", "out")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / "out/a.png")).shape == (40, 50)  # the earlier file replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"]


@pytest.mark.parametrize("layout, expected", [
    ("same folder", r"error: .*new: the output folder holds the input a\.png, whose mask would overwrite images"),
    ("mask and prob names", r"error: .*new/a_prob\.png and .*new/a\.png would both write out/a_prob\.png; rename one"),
])
def test_predict_never_overwrites_an_input(tiny_run, tmp_path, layout, expected):
    names = ["a.png", "b.png"] if layout == "same folder" else ["a.png", "a_prob.png"]
    for name in names:
        save(tmp_path / "new" / name, np.full((40, 50), 7, np.uint8))
    before = {p.name: p.read_bytes() for p in (tmp_path / "new").iterdir()}
    output = "new" if layout == "same folder" else "out"
    result = unetseg(tmp_path, "predict", "--model", str(tiny_run / "models/unet.keras"), "--input", "new",
                     "--output", output)
    assert re.search(expected, error_line(result))
    assert {p.name: p.read_bytes() for p in (tmp_path / "new").iterdir()} == before
    assert not (tmp_path / "out").exists()


def touching_squares() -> np.ndarray:
    labels = np.zeros((20, 30), np.uint16)
    labels[2:10, 2:10], labels[2:10, 10:18], labels[2:10, 18:26] = 1, 2, 3
    return labels


def test_evaluate_scores_another_tools_label_images(tmp_path):
    truth = touching_squares()
    save(tmp_path / "truth/x.png", truth)
    save(tmp_path / "truth/y.png", np.zeros((20, 30), np.uint8))
    save(tmp_path / "pred/x.tif", (truth > 0).astype(np.uint8) * 255)  # the squares fused: one object, IoU 1/3 with each
    save(tmp_path / "pred/y.png", np.zeros((20, 30), np.uint8))
    save(tmp_path / "pred/y_prob.png", np.zeros((20, 30), np.uint8))  # extras beside the masks are ignored
    result = unetseg(tmp_path, "evaluate", "pred", "truth", "--json", "scores.json")
    assert result.returncode == 0, result.stderr
    assert "2 images: Dice 1.000" in result.stdout and "merges 1" in result.stdout
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["dice"] == 1.0 and scores["instances"]["objects_true"] == 3
    assert scores["instances"]["objects_predicted"] == 1 and scores["instances"]["ap_50"] == 0.0
    assert scores["instances"]["count_error"] == round(2 / 3, 6)  # y has no true objects to count
    assert "object counts off by 66.7 % per image (mean); no objects matched" in result.stdout
    assert [row["image"] for row in scores["per_image"]] == ["x", "y"] and scores["per_image"][1]["dice"] is None
    save(tmp_path / "pred/x_instances.png", truth)  # a predicted object file takes precedence: now exact
    scores = json.loads(unetseg(tmp_path, "evaluate", "pred", "truth", "--json", "s.json").stdout and
                        (tmp_path / "s.json").read_text())
    assert scores["instances"]["ap_50"] == 1.0 and scores["instances"]["matched_area_ratio_50"] == 1.0
    assert scores["per_image"][0]["matched_area_ratio_50"] == 1.0 and scores["per_image"][1]["matched_area_ratio_50"] is None


def test_evaluate_pairs_true_masks_named_with_a_suffix(tmp_path):
    """ISIC's true masks are `<image>_segmentation.png`; predictions take the image's name."""
    for stem in ("ISIC_01", "ISIC_02"):
        save(tmp_path / f"truth/{stem}_segmentation.png", touching_squares())
        save(tmp_path / f"pred/{stem}_instances.png", touching_squares())
        save(tmp_path / f"pred/{stem}.png", (touching_squares() > 0).astype(np.uint8) * 255)
    result = unetseg(tmp_path, "evaluate", "pred", "truth", "--json", "scores.json")
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["images"] == 2 and scores["instances"]["ap_50"] == 1.0
    (tmp_path / "pred/ISIC_02.png").unlink()
    assert "no prediction named 'ISIC_02.*'" in error_line(unetseg(tmp_path, "evaluate", "pred", "truth"))


def test_evaluate_errors(tmp_path):
    save(tmp_path / "truth/x.png", touching_squares())
    save(tmp_path / "small/x.png", np.zeros((5, 5), np.uint8))
    (tmp_path / "none").mkdir()
    save(tmp_path / "classes/x.png", np.full((20, 30), 5, np.uint8))
    cases = [
        (["missing", "truth"], "missing: no such folder; give PRED_DIR"),
        (["none", "truth"], "none: no images"),
        (["small", "truth"], "small/x.png: 5x5 but the true mask"),
        (["classes", "classes", "--num-classes", "3"], "mask value 5 is not a class id below --num-classes 3"),
    ]
    for args, expected in cases:
        assert expected in error_line(unetseg(tmp_path, "evaluate", *args)), args


def test_info_describes_a_model_without_keras(tiny_run, tmp_path):
    result = unetseg(tmp_path, "info", str(tiny_run / "models/unet.keras"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    train = json.loads((tiny_run / "reports/train.json").read_text())
    assert info["parameters"] == train["parameters"] and info["input_channels"] == 1
    assert info["depth"] == 2 and info["base_filters"] == 4 and info["tile_multiple"] == 4
    assert info["target"] == "boundary" and info["outputs"] == "3 (softmax)"
    for name, path in bad_model_files(tmp_path, tiny_run / "models/unet.keras").items():
        assert str(path.parent) in error_line(unetseg(tmp_path, "info", str(path))), name


def test_unstack_splits_image_and_mask_stacks_into_files_that_pair(tmp_path):
    import tifffile

    from unetseg.dataset import find_pairs

    volume = np.random.default_rng(0).integers(0, 255, (12, 20, 30), np.uint8)
    tifffile.imwrite(tmp_path / "train-volume.tif", volume)
    tifffile.imwrite(tmp_path / "train-labels.tif", np.where(volume > 127, 255, 0).astype(np.uint8))
    for stack, folder in (("train-volume.tif", "images"), ("train-labels.tif", "masks")):
        result = unetseg(tmp_path, "unstack", stack, folder)
        assert result.returncode == 0, result.stderr
    assert "12 images -> masks/ (train-labels_00.tif to train-labels_11.tif)" in result.stdout
    pairs, _ = find_pairs(tmp_path / "images", tmp_path / "masks")
    assert len(pairs) == 12 and (pairs[7][1].name, pairs[7][2].name) == ("train-volume_07.tif", "train-labels_07.tif")
    save(tmp_path / "x.png", volume[0])
    assert "x.png: not a TIFF" in error_line(unetseg(tmp_path, "unstack", "x.png", "out"))
    assert "missing.tif: file not found" in error_line(unetseg(tmp_path, "unstack", "missing.tif", "out"))
