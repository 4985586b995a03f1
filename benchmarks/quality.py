"""Quality on a dataset with default params only: `dvc repro` in a scratch git + DVC copy of the project.

    python benchmarks/quality.py synthetic          # the shipped default
    python benchmarks/quality.py inverted           # the synthetic images, masks inverted (foreground ~87 %)
    python benchmarks/quality.py sparse             # the synthetic set with 1-2 nuclei per image (~1 %)
    python benchmarks/quality.py stained            # two-channel TIFFs: the nuclei, and a marker that half of
                                                    # them take up; only the marked ones are objects
    python benchmarks/quality.py enlarged           # the synthetic set 4x larger: nuclei ~170 px across
    python benchmarks/quality.py shrunk [--shrink 3]  # the synthetic set drawn 3x larger, 9x the nuclei, then
                                                    # shrunk 3x: nuclei ~8 px across, images 200-320 px
    python benchmarks/quality.py classes            # three classes: background, small and large nuclei;
                                                    # masks named <image>_mask.png
    python benchmarks/quality.py dsb2018 [--data ../shared/datasets/dsb2018] [--masks masks]
    python benchmarks/quality.py dsb2018 --masks labels --mask-type instances   # objects: boundary target
    python benchmarks/quality.py dsb2018 --masks labels --mask-type instances --shrink 2   # its images and
                                                    # labels at half size: nuclei ~18 px across (..._by-2.json)
    python benchmarks/quality.py dsb2018 --kind colour --masks labels --mask-type instances   # only its
                                                    # stained-tissue images (107 of 256x320), as a histology user's
                                                    # data; --kind fluorescence / brightfield likewise
    python benchmarks/quality.py membranes [--masks labels --mask-type instances]   # confluent cells, thin
                                                    # membranes, foreground ~80 % (benchmarks/membranes.py)
    python benchmarks/quality.py membranes --masks membranes   # the membranes as foreground (..._membranes.json)
    python benchmarks/quality.py rods [--masks labels --mask-type instances]   # packed rod-shaped bacteria,
                                                    # side by side and pole to pole (benchmarks/rods.py)
    python benchmarks/quality.py one [--image STEM] --masks labels --mask-type instances   # one annotated
                                                    # DSB2018 image alone (default: a 696x520 fluorescence field,
                                                    # 206 nuclei): prepare.regions auto cuts it into regions to split
    python benchmarks/quality.py synthetic --set data.target=weighted    # a variant (..._target-weighted.json)

A DSB2018 run needs about 42 GB of scratch disk (the patch shards and the DVC cache's copies; the
script checks for 45 GB before it starts); --keep leaves it all in place.

Only data.images, data.masks, data.mask_type (and for all of DSB2018 the 70/10/20 split fractions) are set,
plus what --set names. Writes test Dice and IoU, the object scores (also per kind of test image:
fluorescence, brightfield, colour), the trivial baselines, the chosen plan and the wall time of
`dvc repro` and of each stage in it, the test Dice at each threshold of the probability maps and what
predict chose on the validation images, and the size of the patch shards, to
benchmarks/results/quality_<dataset>[_instances][_<key>-<value>...].json.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml
from PIL import Image
from scipy import ndimage

from common import REPO, param_changes, write_results
import membranes
import rods

sys.path.insert(0, str(REPO))
from unetseg.instances import scores_from_matches  # noqa: E402

ONE_IMAGE = "6fe2df6de1d962b90146c822bcefc84d0d3d6926fdfbacd3acdc9de830ee5622"  # DSB2018: 696x520, 206 nuclei
SHRINK = {"shrunk": 3, "dsb2018": 1}  # --shrink's default per dataset (others take no --shrink)
PROJECT_FILES = ["dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore", ".dvcignore", ".dvc/config",
                 "data/synthetic/dvc.yaml", "stages", "unetseg"]


def dvc_project(root: Path) -> Path:
    """A git + DVC copy of the project's pipeline and code (no outputs)."""
    for name in PROJECT_FILES:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    run(root, "git", "init", "-q")
    commit(root, "project")
    return root


def project_env(root: Path) -> dict:
    """The environment of every command in the scratch project: this Python first on PATH (the stages'
    `python`), the project importable, a git identity."""
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "PATH": path, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(root: Path, *args: str) -> str:
    result = subprocess.run(args, cwd=root, env=project_env(root), capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def commit(root: Path, message: str) -> None:
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", message)


def set_params(root: Path, changes: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in changes.items():
        section, name = key.split(".")
        params[section][name] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(root: Path, *args: str) -> str:
    return run(root, sys.executable, "-m", "dvc", *args)


def timed_repro(root: Path) -> tuple[str, dict]:
    """`dvc repro`'s log, and the seconds from each stage's start to the next one's (the last: to the end)."""
    started, lines, starts = time.perf_counter(), [], {}
    with subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=project_env(root),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Running stage '"):
                starts[line.split("'")[1]] = time.perf_counter()
    log = "".join(lines)
    if process.returncode:
        sys.exit(f"dvc repro failed:\n{log[-6000:]}")
    ends = list(starts.values())[1:] + [time.perf_counter()]
    return log, {"total": round(ends[-1] - started, 1),
                 **{stage: round(end - start, 1) for (stage, start), end in zip(starts.items(), ends)}}


def synthetic_as_own_data(root: Path, transforms: dict, message: str) -> None:
    """Folders of the synthetic dataset as data/raw/<folder>, each PNG through its function (Image ->
    Image; None: copied as it is), added to DVC as the user's own data."""
    dvc(root, "repro", "data/synthetic/dvc.yaml")
    for kind, transform in transforms.items():
        (root / "data/raw" / kind).mkdir(parents=True)
        for path in sorted((root / "data/synthetic" / kind).glob("*.png")):
            if transform is None:
                shutil.copy2(path, root / "data/raw" / kind / path.name)
                continue
            with Image.open(path) as image:
                transform(image).save(root / "data/raw" / kind / path.name)
    dvc(root, "add", *(f"data/raw/{kind}" for kind in transforms))
    commit(root, message)


def inverted_data(root: Path) -> dict:
    """The synthetic dataset with every mask inverted."""
    synthetic_as_own_data(root, {"images": None, "masks": lambda mask: Image.fromarray(255 - np.asarray(mask))},
                          "inverted masks")
    return {"data.images": "data/raw/images", "data.masks": "data/raw/masks", "data.mask_type": "semantic"}


def stained_data(root: Path) -> dict:
    """The synthetic nuclei as the first channel of two-channel TIFFs, the second a marker stain that
    half of them (drawn per image) take up strongly and the rest faintly; the instance labels keep only
    the marked nuclei. Telling them apart needs the second channel, parting touching ones the first."""
    dvc(root, "repro", "data/synthetic/dvc.yaml")
    for kind in ("images", "labels"):
        (root / "data/raw" / kind).mkdir(parents=True)
    for index, path in enumerate(sorted((root / "data/synthetic/images").glob("*.png"))):
        rng = np.random.default_rng([7, index])
        nuclei = np.asarray(Image.open(path))
        labels = np.asarray(Image.open(root / "data/synthetic/labels" / path.name)).astype(np.int32)
        ids = np.arange(1, labels.max() + 1)
        marked = rng.random(ids.size) < 0.5
        uptake = np.where(marked, rng.uniform(0.4, 1.0, ids.size), rng.uniform(0.03, 0.15, ids.size))
        stain = ndimage.gaussian_filter(np.concatenate([[0.0], uptake])[labels], 1.5)
        stain = np.clip(stain + rng.normal(0.05, 0.03, stain.shape), 0, 1)
        tifffile.imwrite(root / "data/raw/images" / f"{path.stem}.tif",
                         np.stack([nuclei, (stain * 255).round().astype(np.uint8)]),
                         imagej=True, metadata={"axes": "CYX"})
        kept = np.where(np.isin(labels, ids[marked]), labels, 0).astype(np.uint16)
        Image.fromarray(kept).save(root / "data/raw/labels" / path.name)
    dvc(root, "add", "data/raw/images", "data/raw/labels")
    commit(root, "two-channel stained nuclei")
    return {"data.images": "data/raw/images", "data.masks": "data/raw/labels", "data.mask_type": "instances"}


def enlarged_data(root: Path, factor: int = 4) -> dict:
    """The synthetic dataset enlarged 4x (images linearly, instance labels by nearest neighbour):
    nuclei ~170 px across in ~1000 px images."""
    def enlarged(resample):
        return lambda image: image.resize((image.width * factor, image.height * factor), resample)

    synthetic_as_own_data(root, {"images": enlarged(Image.BILINEAR), "labels": enlarged(Image.NEAREST)},
                          "enlarged synthetic data")
    return {"data.images": "data/raw/images", "data.masks": "data/raw/labels"}


def shrunk_data(root: Path, factor: int = 3) -> dict:
    """Images drawn `factor`x larger with factor² times the nuclei, then shrunk by `factor` (images by
    area averaging, instance labels by nearest neighbour): the shipped images' sizes and density of
    nuclei, the nuclei ~7 px across (as bacteria, or nuclei at low magnification)."""
    synthesize = yaml.safe_load((root / "params.yaml").read_text())["synthesize"]
    drawn = {"synthesize.min_size": synthesize["min_size"] * factor, "synthesize.max_size": synthesize["max_size"] * factor,
             "synthesize.nuclei_per_image": [n * factor**2 for n in synthesize["nuclei_per_image"]]}
    set_params(root, drawn)

    def shrunk(resample):
        return lambda image: image.resize((image.width // factor, image.height // factor), resample)

    synthetic_as_own_data(root, {"images": shrunk(Image.BOX), "labels": shrunk(Image.NEAREST)},
                          "shrunk synthetic data")
    return {**drawn, "data.images": "data/raw/images", "data.masks": "data/raw/labels"}


LARGE_AREA = 311  # px: the shipped nuclei's median area


def classes_data(root: Path) -> dict:
    """The synthetic dataset with three classes: background, nuclei under LARGE_AREA px (1), the rest (2);
    masks named as the images plus `_mask` (as many public datasets name them)."""
    def by_size(labels):
        ids = np.asarray(labels)
        large = np.bincount(ids.ravel()) >= LARGE_AREA
        return Image.fromarray(np.where(ids > 0, 1 + large[ids], 0).astype(np.uint8))

    synthetic_as_own_data(root, {"images": None, "labels": by_size}, "nuclei in two classes by size")
    masks = root / "data/raw/labels"
    for path in sorted(masks.glob("*.png")):
        path.rename(path.with_name(f"{path.stem}_mask.png"))
    dvc(root, "add", "data/raw/labels")
    commit(root, "masks renamed")
    return {"data.images": "data/raw/images", "data.masks": "data/raw/labels", "data.num_classes": 3}


def copied_data(root: Path, source: Path, masks: str, mask_type: str, shrink: int = 1, kind: str | None = None) -> dict:
    """A dataset copied in as the user's own; with `shrink` > 1, every image and mask shrunk by it (images
    by area averaging, masks by nearest neighbour), its objects as at a lower magnification; with `kind`,
    only the images of that kind (image_kind) and their masks."""
    stems = None if kind is None else stems_of_kind(source / "images", kind)
    copy_shrunk(source / "images", root / "data/raw/images", shrink, Image.BOX, stems)
    copy_shrunk(source / masks, root / "data/raw/masks", shrink, Image.NEAREST, stems)
    dvc(root, "add", "data/raw/images", "data/raw/masks")
    commit(root, "dataset")
    return {"data.images": "data/raw/images", "data.masks": "data/raw/masks", "data.mask_type": mask_type,
            "prepare.val_fraction": 0.1, "prepare.test_fraction": 0.2}


def stems_of_kind(folder: Path, kind: str) -> set[str]:
    return {path.stem for path in folder.iterdir() if image_kind(np.asarray(Image.open(path).convert("RGB"))) == kind}


def copy_shrunk(source: Path, target: Path, factor: int, resample, stems: set[str] | None = None) -> None:
    """Every file of `source` (or those of `stems`) into `target`, as it is, or each image shrunk by
    `factor` (`resample`: a Pillow filter; NEAREST keeps mask values and object ids)."""
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if stems is not None and path.stem not in stems:
            continue
        if factor == 1:
            shutil.copy(path, target)
            continue
        with Image.open(path) as image:
            image.resize((image.width // factor, image.height // factor), resample).save(target / path.name)


def one_image_data(root: Path, source: Path, masks: str, mask_type: str, stem: str) -> dict:
    """One image of `source` and its mask, added to DVC as the user's whole dataset; split fractions the defaults."""
    for folder, target in (("images", "images"), (masks, "masks")):
        (root / "data/raw" / target).mkdir(parents=True)
        shutil.copy(source / folder / f"{stem}.png", root / "data/raw" / target)
    dvc(root, "add", "data/raw/images", "data/raw/masks")
    commit(root, "one image")
    return {"data.images": "data/raw/images", "data.masks": "data/raw/masks", "data.mask_type": mask_type}


def drawn_data(root: Path, write_dataset, size: int, masks: str, mask_type: str) -> dict:
    """50 drawn images of `size` px (a benchmark's write_dataset, seed 0: membranes.py's confluent cells,
    rods.py's packed bacteria), added to DVC as the user's own data."""
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(Path(folder), images=50, size=size, seed=0)
        return copied_data(root, Path(folder), masks, mask_type)


def image_kind(image: np.ndarray) -> str:
    """fluorescence (gray, dark background), brightfield (gray, light) or colour (stained tissue):
    DSB2018's three kinds of image, which differ in difficulty (StarDist's DSB2018 figures are on a
    fluorescence-only subset)."""
    rgb = image.astype(np.float64)
    if np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 2 or np.abs(rgb[..., 1] - rgb[..., 2]).mean() > 2:
        return "colour"
    return "fluorescence" if rgb.mean() < 100 else "brightfield"


def threshold_sweep(root: Path) -> dict[str, float]:
    """Test Dice at each threshold of the probability maps (reports/thresholds.csv)."""
    with open(root / "reports/thresholds.csv") as handle:
        return {row["threshold"]: float(row["dice"]) for row in csv.DictReader(handle)}


def scores_by_kind(root: Path) -> dict:
    """Test Dice and objects pooled per kind of image, from reports/per_image.csv. An image's
    TP at IoU 0.5 follows from its AP = TP / (true + predicted - TP)."""
    kinds = {}
    files = {stem: entry["image"] for stem, entry in
             json.loads((root / "data/prepared/manifest.json").read_text())["images"].items()}
    for row in csv.DictReader((root / "reports/per_image.csv").open()):
        path = root / files[row["image"]]  # a region's (prepare.regions) is the file it was cut from
        kind = kinds.setdefault(image_kind(np.asarray(Image.open(path).convert("RGB"))),
                                {"images": 0, "dice": [], "tp": 0, "fp": 0, "fn": 0})
        true, predicted = int(row["objects_true"] or 0), int(row["objects_predicted"] or 0)
        ap = float(row["ap_50"] or 0)
        tp = round(ap * (true + predicted) / (1 + ap))
        kind["images"] += 1
        kind["dice"] += [float(row["dice"])] if row["dice"] else []  # empty: nothing in truth or prediction
        kind["tp"], kind["fp"], kind["fn"] = kind["tp"] + tp, kind["fp"] + predicted - tp, kind["fn"] + true - tp
    summary = {}
    for name, k in sorted(kinds.items()):
        objects = scores_from_matches(k["tp"], k["fp"], k["fn"], 0.0)
        summary[name] = {"images": k["images"], "dice": round(float(np.mean(k["dice"])), 6) if k["dice"] else None,
                         "objects_true": k["tp"] + k["fn"], "ap_50": round(objects["ap"], 6),
                         "f1_50": round(objects["f1"], 6)}
    return summary


SCRATCH_GB = {"dsb2018": 45}  # the patch-96 run's scratch held 42 GB (shards 19, their DVC cache copies 21)


def check_scratch_space(dataset: str) -> None:
    """Stop before a run that would fill the disk halfway (a DVC error deep in `augment`)."""
    folder, needed = tempfile.gettempdir(), SCRATCH_GB.get(dataset, 2)
    free = shutil.disk_usage(folder).free / 2**30
    if free < needed:
        sys.exit(f"{folder}: {free:.0f} GB free, a {dataset} run needs about {needed} GB; free some (scratch "
                 f"projects kept with --keep are {folder}/quality_*) or point TMPDIR elsewhere")


def slug(value) -> str:
    """A param value as it goes in a file name: [190, 640] -> 190-640."""
    return "-".join(map(str, value)) if isinstance(value, list) else str(value)


def folder_gb(folder: Path) -> float:
    """The bytes of the files under `folder`, in GB (the DVC cache holds a copy of each besides)."""
    return round(sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e9, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["synthetic", "inverted", "sparse", "stained", "enlarged", "shrunk",
                                            "classes", "dsb2018", "membranes", "rods", "one"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/datasets/dsb2018")
    parser.add_argument("--masks", default="masks", help="mask folder of --data (default: masks)")
    parser.add_argument("--image", default=ONE_IMAGE, help="one: the stem of the --data image to take")
    parser.add_argument("--mask-type", default="semantic", choices=["semantic", "instances"],
                        help="what --masks holds: binary masks, or one id per object (DSB2018's labels)")
    parser.add_argument("--shrink", type=int, help="shrunk: by this factor (default: 3); dsb2018: its images and "
                                                   "masks shrunk by it (default: 1, as they are)")
    parser.add_argument("--kind", choices=["fluorescence", "brightfield", "colour"],
                        help="dsb2018: only its images of this kind (and their masks), as a user whose data are all such")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more param (YAML value), e.g. data.target=weighted; repeatable")
    parser.add_argument("--keep", action="store_true", help="keep the scratch project and print its path")
    args = parser.parse_args()
    extra = param_changes(args.set)
    shrink = args.shrink or SHRINK.get(args.dataset)
    check_scratch_space(args.dataset)
    root = Path(tempfile.mkdtemp(prefix=f"quality_{args.dataset}_"))
    try:
        dvc_project(root)
        changes = {"synthetic": lambda: {}, "inverted": lambda: inverted_data(root),
                   "sparse": lambda: {"synthesize.nuclei_per_image": [1, 2]},
                   "stained": lambda: stained_data(root),
                   "enlarged": lambda: enlarged_data(root), "shrunk": lambda: shrunk_data(root, shrink),
                   "classes": lambda: classes_data(root),
                   "dsb2018": lambda: copied_data(root, args.data.resolve(), args.masks, args.mask_type, shrink,
                                                  args.kind),
                   "membranes": lambda: drawn_data(root, membranes.write_dataset, 384, args.masks, args.mask_type),
                   "rods": lambda: drawn_data(root, rods.write_dataset, 256, args.masks, args.mask_type),
                   "one": lambda: one_image_data(root, args.data.resolve(), args.masks, args.mask_type, args.image),
                   }[args.dataset]()
        changes = {**changes, **extra}
        set_params(root, changes)
        log, stage_seconds = timed_repro(root)
        metrics = json.loads((root / "reports/metrics.json").read_text())
        plan = json.loads((root / "reports/plan.json").read_text())
        train = json.loads((root / "reports/train.json").read_text())
        objects = args.dataset in ("dsb2018", "membranes", "rods", "one") and args.mask_type == "instances"
        suffix = "_instances" if objects else ""
        suffix += f"_{args.image[:8]}" if args.dataset == "one" and args.image != ONE_IMAGE else ""
        suffix += f"_{args.masks}" if args.masks not in ("masks", "labels") else ""
        suffix += f"_{args.kind}" if args.kind else ""
        suffix += f"_by-{shrink}" if shrink != SHRINK.get(args.dataset) else ""
        suffix += "".join(f"_{key.split('.')[-1]}-{slug(value)}" for key, value in extra.items())
        write_results(f"quality_{args.dataset}{suffix}", {
            "dataset": args.dataset,
            "params_set": changes,
            "test": {key: metrics.get(key) for key in ("n_images", "dice", "iou", "precision", "recall")},
            "baselines": metrics["baselines"],
            "margin_over_best_baseline": metrics["margin_over_best_baseline"],
            "instances": metrics.get("instances"),
            "per_class": metrics.get("per_class"),
            "by_image_kind": None if args.dataset in ("membranes", "classes", "stained")  # DSB2018's kinds
            else scores_by_kind(root),
            "threshold_sweep": threshold_sweep(root),
            "postprocess": {key: value for key, value in
                            json.loads((root / "data/predictions/postprocess.json").read_text()).items()
                            if key != "validation_ap_50"},  # the choices on the validation images
            "warnings": [line for line in log.splitlines() if line.startswith("warning:")],
            "plan": plan["values"],
            "plan_estimate": plan["estimate"],
            "fingerprint": plan["fingerprint"],
            "train": train,
            "dvc_repro_wall_s": stage_seconds["total"],
            "stage_seconds": stage_seconds,
            "shard_gb": {folder: folder_gb(root / "data" / folder) for folder in ("patches/train", "augmented")},
        })
    finally:
        if args.keep:
            print(f"scratch project kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
