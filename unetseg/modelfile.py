"""What a saved model expects and gives, read from its files without starting Keras.

A model is `<name>.keras` (a zip of config.json, metadata.json and model.weights.h5, Keras 3's
format) with `preprocessing.json` beside it, written by the train stage: the input channels, how
intensities were normalised, the number of classes, the target (binary, boundary or classes) and,
where the plan resized the images, their scale.
"""

import json
import zipfile
from pathlib import Path

from unetseg.errors import UserError

PARTS = ("config.json", "model.weights.h5")


def model_target(preprocessing: dict) -> str:
    """What the model's output means (binary, boundary or classes): train saves it beside the model."""
    return preprocessing.get("target", "binary" if preprocessing["num_classes"] == 1 else "classes")


def model_gap(preprocessing: dict) -> int:
    """For the weighted target, the px a side of the gap it leaves between touching objects."""
    return preprocessing.get("gap_width", 0)


def model_scale(preprocessing: dict) -> float:
    """The scale the model saw its images at (the plan's extract.scale): predict resizes to it and back."""
    return preprocessing.get("scale", 1.0)


def read_preprocessing(model_path) -> dict:
    path = Path(model_path).parent / "preprocessing.json"
    try:
        preprocessing = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found beside the model; copy the preprocessing.json that training "
                        "wrote next to it (models/ holds both)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); restore the file training wrote") from None
    missing = [key for key in ("channels", "num_classes", "normalization") if key not in preprocessing]
    if missing:
        raise UserError(f"{path}: no {', '.join(missing)}; restore the file training wrote next to the model")
    return preprocessing


def read_config(model_path) -> dict:
    """The Keras config of a .keras file, after checking that the file is a complete one."""
    path = Path(model_path)
    if not path.is_file():
        raise UserError(f"{path}: model not found; train one first (dvc repro train) or pass --model")
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [part for part in PARTS if part not in archive.namelist()]
            if missing:
                raise UserError(f"{path}: an incomplete Keras model file (no {', '.join(missing)}); "
                                "copy it again or retrain (dvc repro train)")
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, json.JSONDecodeError, EOFError):
        raise UserError(f"{path}: not a Keras model file (a .keras zip); pass the unet.keras that training "
                        "wrote, e.g. models/unet.keras") from None


def parameter_count(model_path) -> int:
    """The number of weights of the model's layers (not the optimizer's state saved beside them)."""
    import h5py  # Keras's own dependency, imported only when asked

    total = 0
    with zipfile.ZipFile(model_path) as archive, archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as h5:
        def add(_, item):
            nonlocal total
            if isinstance(item, h5py.Dataset):
                total += item.size
        h5["layers"].visititems(add)
    return total


def describe_model(model_path) -> dict:
    """What `unetseg info` prints: inputs, outputs, architecture and the preprocessing of a model."""
    config, preprocessing = read_config(model_path), read_preprocessing(model_path)
    layers = config["config"]["layers"]
    classes = [layer["class_name"] for layer in layers]
    convolutions = [layer["config"] for layer in layers if layer["class_name"] == "Conv2D"]
    depth = classes.count("MaxPooling2D")
    head = convolutions[-1]
    return {
        "model": str(model_path),
        "input_channels": preprocessing["channels"],
        "normalization": preprocessing["normalization"],
        "num_classes": preprocessing["num_classes"],
        "target": model_target(preprocessing),
        "scale": model_scale(preprocessing),
        "outputs": f"{head['filters']} ({head['activation']})",
        "depth": depth,
        "base_filters": convolutions[0]["filters"],
        "batchnorm": "BatchNormalization" in classes,
        "tile_multiple": 2**depth,
        "parameters": parameter_count(model_path),
    }
