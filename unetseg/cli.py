"""The `unetseg` command: predict new images, score any folder of masks, describe a model, split a
TIFF stack into the one-image files the pipeline reads.

    unetseg predict --model models/unet.keras --input FILE_OR_DIR --output DIR
    unetseg evaluate PRED_DIR TRUTH_DIR [--json scores.json]
    unetseg info models/unet.keras
    unetseg unstack STACK.tif FOLDER [--name NAME]

Only what a command needs is imported when it runs (Keras only for predict), so `--help` is instant.
The pipeline itself runs through `dvc repro`.
"""

import argparse
import json
import sys
import typing
from pathlib import Path

from unetseg.errors import UserError, exit_on_user_error
from unetseg.params import Params, Predict, load_params

MODEL = "models/unet.keras"
POSTPROCESS = "data/predictions/postprocess.json"


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    exit_on_user_error(args.command, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unetseg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    add_predict(commands)
    add_evaluate(commands)
    add_info(commands)
    add_unstack(commands)
    return parser


def add_predict(commands) -> None:
    parser = commands.add_parser(
        "predict", help="masks, probability maps and objects of new images",
        description="Predict whole images of any size with a trained model, normalised as its training data "
                    "was. For each image writes <stem>.png (mask: 0/255 or class ids), <stem>_prob.png or .npy "
                    "(probabilities), and for one class <stem>_instances.png (uint16 object ids) and "
                    "<stem>_objects.csv (per object: area, centroid, box, shape, mean and total intensity in the "
                    "file's own values; in µm too given the pixel size), and summary.csv (per image: objects, "
                    "their median and mean size, foreground share). Never overwrites an input; each file "
                    "appears whole or not at all.")
    parser.set_defaults(command=run_predict)
    parser.add_argument("--input", required=True, type=Path,
                        help="an image file or a folder of images (.png, .tif, .tiff, .jpg, .jpeg, .bmp, .gif)")
    parser.add_argument("--output", required=True, type=Path, help="folder for the outputs (created if needed)")
    parser.add_argument("--model", default=MODEL, type=Path,
                        help=f"a .keras model with the preprocessing.json training wrote beside it (default: {MODEL})")
    parser.add_argument("--params", default="params.yaml", type=Path,
                        help="a params file whose predict section sets the settings, when it exists "
                             "(default: params.yaml)")
    parser.add_argument("--postprocess", default=POSTPROCESS, type=Path,
                        help="the seeds and minimum object size the pipeline's predict stage chose on its validation "
                             "images, used for those settings left auto when the file was written for --model; "
                             f"else the defaults (default: {POSTPROCESS})")
    settings = parser.add_argument_group("settings (each overrides the params file; the defaults are params.yaml's)")
    for key, field in Predict.model_fields.items():
        settings.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None, help=flag_help(field),
                              **flag_kind(field.annotation))
    settings.add_argument("--pixel-size", type=float, metavar="UM", help="µm per pixel of the images: the objects' "
                          "tables gain µm columns (default: the params file's measure.pixel_size; auto: each image's own, "
                          "as its TIFF records it)")


def flag_kind(annotation) -> dict:
    """argparse type, choices and action for a params field: auto-or-number, a literal, a bool."""
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    members = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return {"choices": members}
    if typing.get_origin(annotation) is typing.Union:  # auto_or(kind): "auto" or a number
        kind = next(typing.get_args(member)[0] for member in members if typing.get_origin(member) is typing.Annotated)
        return {"type": lambda text: text if text == "auto" else kind(text), "metavar": f"{{auto,{kind.__name__}}}"}
    return {"type": annotation, "metavar": annotation.__name__}


def flag_help(field) -> str:
    return f"{field.description} (default: {field.default})".replace("%", "%%")


def add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="score a folder of predicted masks against the true ones",
        description="Dice, IoU, precision, recall and pixel accuracy (means over images) and, for one class, "
                    "objects matched on IoU (AP, F1, PQ at IoU 0.5, mean AP over 0.5..0.95, merges, splits; "
                    "how far the counts and matched objects' areas are off), as the pipeline's evaluate stage "
                    "scores them. Masks pair by file name stem (or the stem with a fixed text added, as "
                    "a_segmentation.png); either side may be binary (0/1, 0/255), object ids or objects coloured "
                    "one by one on black, from any tool.")
    parser.set_defaults(command=run_evaluate)
    parser.add_argument("predictions", metavar="PRED_DIR", type=Path, help="folder of predicted masks")
    parser.add_argument("truths", metavar="TRUTH_DIR", type=Path, help="folder of true masks")
    parser.add_argument("--num-classes", type=int, default=1,
                        help="1 (the default): foreground is any non-zero pixel; N >= 2: masks hold class ids 0..N-1")
    parser.add_argument("--json", type=Path, help="also write every score and one row per image to this file")


def add_info(commands) -> None:
    parser = commands.add_parser("info", help="what a model expects and gives",
                                 description="Input channels, normalisation, outputs, architecture and size "
                                             "of a trained model, read without starting Keras.")
    parser.set_defaults(command=run_info)
    parser.add_argument("model", metavar="MODEL", type=Path, nargs="?", default=Path(MODEL),
                        help=f"a .keras model (default: {MODEL})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")


def add_unstack(commands) -> None:
    parser = commands.add_parser(
        "unstack", help="split a multi-page TIFF stack into one TIFF per image",
        description="The pipeline reads one image per file; a stack (slices, pages, time points: ISBI-2012's "
                    "train-volume.tif and train-labels.tif, for one) becomes FOLDER/<name>_<index>.tif, each in "
                    "its own dtype, indices zero-padded. Split the masks' stack the same way: names that differ "
                    "by one fixed text pair up (train-volume_07.tif with train-labels_07.tif).")
    parser.set_defaults(command=run_unstack)
    parser.add_argument("stack", metavar="STACK", type=Path, help="a multi-page TIFF")
    parser.add_argument("folder", metavar="FOLDER", type=Path, help="folder for the images (created if needed)")
    parser.add_argument("--name", help="the files' name before the index (default: the stack's file name stem)")


def run_unstack(args) -> None:
    from unetseg.imageio import unstack

    written = unstack(args.stack, args.folder, args.name)
    print(f"unstack: {len(written)} images -> {args.folder}/ ({written[0].name} to {written[-1].name})")


def run_predict(args) -> None:
    from tqdm import tqdm

    from unetseg.inference import chosen_for, input_files, predict_files  # starts Keras

    files = input_files(args.input)
    choice, source = chosen_for(args.model, args.postprocess)
    written = predict_files(files, args.output, args.model, predict_params(args), choice,
                            progress=lambda items: tqdm(items, desc="predict", disable=None))
    print(f"unetseg predict: {len(files)} image(s) -> {len(written)} files in {args.output}/; {source}")


def predict_params(args) -> Params:
    """The params file's values (when it exists, else the schema's), with the flags given on top."""
    from unetseg.params import with_predict, with_section

    params = load_params(args.params) if args.params.is_file() else Params()
    flags = {key: value for key, value in vars(args).items() if key in Predict.model_fields and value is not None}
    if args.pixel_size is not None:
        params = with_section(params, "measure", {"pixel_size": args.pixel_size}, "--pixel-size")
    return with_predict(params, flags, "flags") if flags else params


def run_evaluate(args) -> None:
    from tqdm import tqdm

    from unetseg.scoring import score_folders

    if args.num_classes < 1:
        raise UserError(f"--num-classes {args.num_classes}: give 1 for foreground/background, N >= 2 for N classes")
    scores = score_folders(args.predictions, args.truths, args.num_classes,
                           progress=lambda items: tqdm(items, desc="evaluate", disable=None))
    print(score_lines(scores))
    if args.json:
        from unetseg.files import write_json

        write_json(args.json, scores)
        print(f"unetseg evaluate: scores written to {args.json}")


def score_lines(scores: dict) -> str:
    from unetseg.instances import measurement_line
    from unetseg.metrics import shown

    lines = [f"{scores['images']} images: Dice {shown(scores['dice'])}, IoU {shown(scores['iou'])}, "
             f"precision {shown(scores['precision'])}, recall {shown(scores['recall'])}, "
             f"pixel accuracy {shown(scores['pixel_accuracy'])}"]
    objects = scores.get("instances")
    if objects:
        lines.append(f"objects: {objects['objects_true']} true, {objects['objects_predicted']} predicted; "
                     f"AP@0.5 {objects['ap_50']:.3f}, F1@0.5 {objects['f1_50']:.3f}, mean AP 0.5-0.95 "
                     f"{objects['mean_ap']:.3f}, PQ@0.5 {objects['pq_50']:.3f}, "
                     f"merges {objects['merges']}, splits {objects['splits']}")
        lines.append(measurement_line(objects))
    return "\n".join(lines)


def run_info(args) -> None:
    from unetseg.modelfile import describe_model

    description = describe_model(args.model)
    if args.json:
        print(json.dumps(description, indent=2))
        return
    for key, value in description.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unetseg")
    except PackageNotFoundError:
        return "(not installed)"


if __name__ == "__main__":
    main()
