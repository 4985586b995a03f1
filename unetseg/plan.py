"""The plan: a data fingerprint and a compute budget turned into patch size, network, batch and
training length (nnU-Net's fingerprint -> plan, on a CPU budget).

Pure functions: the same fingerprint and params give the same plan, so DVC can cache it. Time
enters only through a cost model, never a clock: FLOPs per patch counted from the network,
plus a fixed cost per step, divided by the machine throughput `plan.gflops` (`python -m
unetseg.calibrate` measures it).
Every planned knob is `auto` in params.yaml; a value there pins it, and the plan keeps it.
"""

import math

import numpy as np
from scipy import ndimage

from unetseg.errors import UserError
from unetseg.params import check_divisible
from unetseg.patches import grid_corners, kept_count, oversampled_count
from unetseg.scale import scaled_shape

MAX_DEPTH = 4                     # the classic U-Net: four poolings
BOTTLENECK = 8                    # the deepest feature map is at least this many pixels across
MAX_PATCH = 256                   # past this, a patch adds memory and little context for a 2D U-Net
MIN_PATCH = 128                   # at a fixed budget, smaller patches put more images in a batch
                                  # (DSB2018: test Dice 0.915 at 128, 0.908 at 256; instance labels:
                                  # 0.917 at 128, 0.916 at 96, object AP@0.5 0.712 at both) ...
CONTEXT = 2                       # ... as long as a patch spans this many diameters of a large object
MAX_WIDTH = 64                    # px: wider objects are halved, with their images, until they are not (the
                                  # shipped nuclei enlarged 4x, 113 px wide: object AP@0.5 0.898 at half size,
                                  # 0.799 at full, same budget); a quarter of MAX_PATCH
MIN_DIAMETER = 20                 # px: smaller typical objects are doubled, with their images, until they are not
                                  # (the shipped nuclei, typically 30 px, shrunk: object AP@0.5 at their size and at
                                  # twice it 0.828 and 0.898 at 16 px, 0.464 and 0.899 at 11 px: the boundary
                                  # target's 2 px edges leave small objects little interior)
MAX_SCALE = 4
MAX_TILE = 512
PIXELS_PER_BATCH = 16 * 128 * 128  # batch size scales with the patch to keep this constant
MAX_BATCH = 32
FILTERS = (8, 16, 32)             # 32 is the seed network
HEADROOM = 4                      # a wider network only when its planned training fits 4x in the budget
PIXEL_VISITS = 160                # training wants each training pixel seen about this often (the shipped
                                  # data, seeds 42/7/11: object AP@0.5 0.877/0.888/0.908 and Dice
                                  # 0.988/0.978/0.985 at 100; 0.890/0.905/0.930 and 0.988/0.986/0.989 at
                                  # 160, in 4-4.5 min; 200 is no better and takes 5 min)
MIN_STEPS = 600                   # ... and at least this many optimizer steps
ROUNDS = (8, 40)                  # validation rounds (epochs): fewest and most
VAL_SHARE = 0.1                   # the validation rounds take at most this share of plan.train_minutes
                                  # (DSB2018's 66 validation images: ~1 %; 750 of LIVECell's 704x520 would
                                  # take ~9 min in 8 rounds at base 8 beside the 21 of training: the plan's count)
TRAIN_FLOPS_PER_FORWARD = 3       # forward + backward ~ 3 forward passes
STEP_GFLOP = 6.0                  # each optimizer step also costs a fixed time, whatever its batch (the
                                  # update of every weight, the input, a launch per layer), counted as this
                                  # much work at plan.gflops: 2 CPU cores, base 8, 128 px, bf16, fused batch
                                  # norm: 41.7 ms a step + 10.8 ms a patch, ~6.4 GFLOP; none: 30.9 + 5.9, ~5.9
                                  # (benchmarks/step_cost.py). Without it, the shipped run took 1.3x the
                                  # estimate, and 1.7x with batches of 8
BATCHNORM_COST = 1.45             # time with batch normalisation / without, 2 CPU cores, bf16, as the train
                                  # stage runs it (TensorFlow's fused kernel, tf_training.FusedBatchNorm):
                                  # the bare step 1.34x at base 8, 1.24x at 16 (benchmarks/batchnorm_cost.py;
                                  # Keras's own layer 1.81x, 1.58x), and the stage adds to it (1.82 there
                                  # against 1.70 bare with Keras's layer)
COPIES = 2                        # augmented versions of each training patch, while training sees them all
OVERSAMPLE = 0.33                 # nnU-Net forces a third of each batch onto foreground
MAJORITY = 0.5                    # foreground above this fraction needs no oversampling
PINNED = "pinned in params.yaml"


def conv_flops(pixels: int, c_in: int, c_out: int, kernel: int) -> int:
    return 2 * pixels * kernel * kernel * c_in * c_out


def unet_flops(patch: int, channels: int, depth: int, base_filters: int, num_classes: int = 1,
               upsampling: str = "transpose") -> int:
    """Forward-pass FLOPs (2 per multiply-add) of `unetseg.unet.build_unet` on one patch x patch input."""
    filters = [base_filters * 2**level for level in range(depth + 1)]
    pixels = [(patch // 2**level) ** 2 for level in range(depth + 1)]
    total, c_in = 0, channels
    for level in range(depth + 1):  # encoder levels, then the bottleneck
        total += conv_flops(pixels[level], c_in, filters[level], 3) + conv_flops(pixels[level], filters[level], filters[level], 3)
        c_in = filters[level]
    for level in reversed(range(depth)):
        if upsampling == "transpose":  # 2x2 stride 2: each output pixel takes one kernel tap
            total += conv_flops(pixels[level], filters[level + 1], filters[level], 1)
        else:
            total += conv_flops(pixels[level], filters[level + 1], filters[level], 3)
        total += conv_flops(pixels[level], 2 * filters[level], filters[level], 3)
        total += conv_flops(pixels[level], filters[level], filters[level], 3)
    return total + conv_flops(pixels[0], filters[0], num_classes, 1)


def image_fingerprint(image: np.ndarray, mask: np.ndarray, num_classes: int) -> dict:
    """What the plan needs of one training image: size, intensity, class pixels, object areas."""
    classes = [1] if num_classes == 1 else range(1, num_classes)
    areas, widths = [], []
    for c in classes:
        region = mask == c
        components, count = ndimage.label(region)
        areas += np.bincount(components.ravel(), minlength=count + 1)[1:].tolist()
        if count:  # the widest inscribed disc: a nucleus's width is its diameter, a membrane mesh's a few px
            inside = ndimage.distance_transform_edt(region)
            widths += [round(2 * float(r), 2) for r in ndimage.maximum(inside, components, np.arange(1, count + 1))]
    return {
        "shape": [int(s) for s in mask.shape],
        "intensity": [float(image.mean()), float(image.std())],
        "class_pixels": np.bincount(mask.ravel(), minlength=max(num_classes, 2)).tolist(),
        "object_areas": areas,
        "object_widths": widths,
    }


def dataset_fingerprint(train: list[dict], val_shapes: list, channels: int, num_classes: int) -> dict:
    """Summary of the per-image fingerprints of the training split (and the sizes of the val split)."""
    shapes = np.array([f["shape"] for f in train])
    class_pixels = np.sum([f["class_pixels"] for f in train], axis=0)
    areas = np.array([a for f in train for a in f["object_areas"]], np.float64)
    widths = np.array([w for f in train for w in f["object_widths"]], np.float64)
    intensity = np.array([f["intensity"] for f in train])
    return {
        "train_images": len(train),
        "train_shapes": shapes.tolist(),
        "val_shapes": [list(s) for s in val_shapes],
        "median_shape": [int(v) for v in np.median(shapes, axis=0)],
        "median_short_side": int(np.median(shapes.min(axis=1))),
        "channels": channels,
        "num_classes": num_classes,
        "foreground_fraction": round(float(1 - class_pixels[0] / class_pixels.sum()), 6),
        "class_fraction": [round(float(n / class_pixels.sum()), 6) for n in class_pixels],
        "objects": {
            "count": int(areas.size),
            "median_area": float(np.median(areas)) if areas.size else 0.0,
            "p95_diameter": round(float(2 * np.sqrt(np.percentile(areas, 95) / np.pi)), 2) if areas.size else 0.0,
            "p95_width": round(float(np.percentile(widths, 95)), 2) if widths.size else 0.0,
            "typical_diameter": typical_diameter(areas),
        },
        "intensity_mean": round(float(intensity[:, 0].mean()), 6),
        "intensity_std": round(float(intensity[:, 1].mean()), 6),
    }


def typical_diameter(areas: np.ndarray) -> float:
    """Diameter of the disc of the area of the object that holds the median foreground pixel: the size
    of most of the foreground, which specks of debris or a mesh's fragments do not pull down. 0 without
    objects."""
    if not areas.size:
        return 0.0
    ordered = np.sort(areas)
    median = ordered[np.searchsorted(np.cumsum(ordered), ordered.sum() / 2)]
    return round(float(2 * np.sqrt(median / np.pi)), 2)


class Planner:
    """Fills each planned knob in turn; `decide` keeps a pinned value and records why."""

    def __init__(self, params):
        self.params, self.values, self.reasons = params, {}, {}

    def pinned(self, key: str):
        """The value params.yaml gives `key`, or None when it is `auto`."""
        section, name = key.split(".")
        value = getattr(getattr(self.params, section), name)
        return None if value == "auto" else value

    def decide(self, key: str, planned, reason: str):
        pinned = self.pinned(key)
        if pinned is not None:
            self.values[key], self.reasons[key] = pinned, PINNED
        else:
            self.values[key], self.reasons[key] = planned() if callable(planned) else planned, reason
        return self.values[key]


def make_plan(fingerprint: dict, params) -> dict:
    """Every planned value with the reason for it, and the estimated cost of training."""
    plan = Planner(params)
    width, typical = fingerprint["objects"]["p95_width"], fingerprint["objects"]["typical_diameter"]
    working = working_scale(width, fingerprint["median_short_side"], typical)
    scale = plan.decide("extract.scale", working, scale_reason(width, typical, working))
    fingerprint = at_scale(fingerprint, scale)
    short = fingerprint["median_short_side"]
    fits = max(1, min(MAX_DEPTH, int(math.log2(max(short, 2 * BOTTLENECK) / BOTTLENECK))))
    depth = plan.decide("model.depth", fits, f"{fits} poolings leave a bottleneck of >= {BOTTLENECK} px "
                                             f"on the median image's short side ({short} px)")
    step = 2**depth
    diameter = fingerprint["objects"]["p95_diameter"]
    wanted = min(MAX_PATCH, max(MIN_PATCH, math.ceil(CONTEXT * diameter / step) * step))
    patch = plan.decide("extract.patch_size", max(step, min(short, wanted) // step * step),
                        f"{CONTEXT}x the large objects' diameter ({diameter:g} px, 95th percentile) "
                        f"within [{MIN_PATCH}, {MAX_PATCH}]: more images per batch where objects are "
                        f"small; a multiple of 2**depth = {step} within the median image "
                        f"({'x'.join(map(str, fingerprint['median_shape']))})")
    _check_sizes(params, depth, patch)
    foreground = fingerprint["foreground_fraction"]
    fg = plan.decide("extract.fg_fraction", OVERSAMPLE if foreground < MAJORITY else 0.0,
                     f"foreground covers {foreground:.1%} of the training pixels: "
                     + ("a third of the patches centred on foreground (as nnU-Net)" if foreground < MAJORITY
                        else "grid patches already hold plenty of it"))
    batch = plan.decide("train.batch_size", min(MAX_BATCH, max(2, round(PIXELS_PER_BATCH / patch**2))),
                        f"{PIXELS_PER_BATCH // 1024}k pixels per batch at patch {patch}")
    plan.decide("train.loss", "bce_dice", "cross-entropy + Dice (as nnU-Net): Dice alone can settle "
                                          "on all-foreground when foreground is the majority")
    plan.decide("predict.tile_size", max(patch, min(2 * patch, MAX_TILE) // step * step),
                "twice the patch (at most 512): fewer tile borders, same network")

    cost = CostModel(params, fingerprint, patch, depth)
    filters = plan.decide("model.base_filters", lambda: cost.widest(FILTERS, batch),
                          "the widest of 8/16/32 whose wanted training fits "
                          f"{HEADROOM}x in plan.train_minutes ({params.plan.train_minutes:g})")
    steps = cost.steps(filters, batch)
    train_patches = patch_supply(plan, fingerprint["train_shapes"], patch, fg, steps * batch)
    epochs, steps_per_epoch = rounds(plan, steps, train_patches, batch)
    val_patches = validation_supply(plan, cost, fingerprint["val_shapes"], filters, epochs)
    estimate = cost.estimate(filters, batch, epochs * steps_per_epoch, epochs, val_patches)
    if plan.reasons["model.base_filters"] != PINNED:
        plan.reasons["model.base_filters"] += f"; {estimate['train_gflop_per_patch']:g} GFLOP per training patch"
    return {
        "values": plan.values,
        "reasons": plan.reasons,
        "patches": {"train_per_epoch_pass": train_patches, "val": val_patches},
        "estimate": estimate,
        "budget": {"train_minutes": params.plan.train_minutes, "gflops": params.plan.gflops},
    }


def patch_supply(plan: Planner, shapes, patch: int, fg_fraction: float, seen: int) -> int:
    """Stride, augmented copies and the share of each image's grid cut, for the most training patches
    up to what training will see (`seen`: steps x batch). In order of preference: grids overlapping
    by half and COPIES copies, no overlap, fewer copies, a seeded share of each image's grid. So
    extract and augment write, and DVC stores, about what training reads, however large the data.
    Returns the patches of one pass (every cut patch and its copies)."""
    def supply(stride, copies, share):
        return count_patches(shapes, patch, stride, fg_fraction, share) * (copies + 1)

    preferred = [(patch // 2, COPIES), (patch, COPIES)] + [(patch, c) for c in reversed(range(COPIES))]
    stride_pin, copies_pin, share_pin = (plan.pinned(key) for key in
                                         ("extract.stride", "augment.copies", "extract.grid_fraction"))
    options = [(stride_pin or stride, copies if copies_pin is None else copies_pin) for stride, copies in preferred]
    share = share_pin or 1.0
    fitting = [option for option in options if supply(*option, share) <= seen]
    stride, copies = fitting[0] if fitting else options[-1]
    if not fitting and share_pin is None:
        share = float(f"{seen / supply(stride, copies, 1.0):.3g}")
    too_many = (f"the grid overlapping by half with {COPIES} augmented copies would give "
                f"{supply(patch // 2, COPIES, 1.0)} patches a pass, more than the {seen} training sees")
    plan.decide("extract.stride", stride, "half the patch: every pixel in several patches"
                if stride == patch // 2 else f"the patch: {too_many}")
    plan.decide("augment.copies", copies, f"{copies} augmented version{'' if copies == 1 else 's'} of each "
                "training patch" + ("" if copies == COPIES else f": {too_many}"))
    plan.decide("extract.grid_fraction", share, "every grid patch" if share == 1 else
                f"{share:g} of each training image's grid, a seeded draw: even without overlap or copies "
                f"the grid gives {supply(stride, copies, 1.0)} patches, more than the {seen} training sees")
    v = plan.values
    return supply(v["extract.stride"], v["augment.copies"], v["extract.grid_fraction"])


def validation_supply(plan: Planner, cost: "CostModel", shapes, filters: int, epochs: int) -> int:
    """The share of each validation image's grid (no overlap) scored at every round: all of it, unless
    the rounds would then take over VAL_SHARE of the budget. Returns the validation patches."""
    patch = cost.patch
    full = count_patches(shapes, patch, patch, 0.0)
    minutes = epochs * full * cost.seconds_per_forward(filters) / 60
    allowed = VAL_SHARE * cost.budget_s / 60
    rounds_of = f"{epochs} rounds over all {full} validation patches take ~{minutes:.2g} min"
    share = plan.decide("extract.val_grid_fraction",
                        1.0 if minutes <= allowed else float(f"{allowed / minutes:.3g}"),
                        f"every validation grid patch: {rounds_of}" if minutes <= allowed else
                        f"a seeded share of each validation image's grid: {rounds_of}, over {VAL_SHARE:.0%} of "
                        f"plan.train_minutes")
    return count_patches(shapes, patch, patch, 0.0, share)


def working_scale(width: float, short_side: int, typical: float = 0.0) -> float:
    """1, or the power of 1/2 at which the large objects are at most MAX_WIDTH px wide, as long as
    the median image's short side stays at least MIN_PATCH; or the power of 2 (up to MAX_SCALE) at
    which the typical object is at least MIN_DIAMETER px across, as long as the large ones stay within
    MAX_WIDTH. Width (the widest inscribed disc), not the diameter of the area: a mesh of thin
    membranes or vessels is one large connected object that halving would erase."""
    scale = 1.0
    while width * scale > MAX_WIDTH and short_side * scale / 2 >= MIN_PATCH:
        scale /= 2
    while 0 < typical * scale < MIN_DIAMETER and width * scale * 2 <= MAX_WIDTH and scale * 2 <= MAX_SCALE:
        scale *= 2
    return scale


def scale_reason(width: float, typical: float, scale: float) -> str:
    large = f"the large objects ({width:g} px wide, 95th percentile)"
    back = "predict scales each image the same way and its output back"
    if scale > 1:
        return (f"the images at {scale:g}x their size, where the typical object ({typical:g} px across) is "
                f"{typical * scale:g} px, at least {MIN_DIAMETER} px (or as near as keeps {large} within {MAX_WIDTH} "
                f"px): room for an interior inside its boundary; {back}")
    if scale == 1:
        small = (f"; the typical object is {typical:g} px across, under {MIN_DIAMETER}, but doubling would take "
                 f"{large} past {MAX_WIDTH} px" if 0 < typical < MIN_DIAMETER else "")
        return (f"{large} are within {MAX_WIDTH} px{small}" if width <= MAX_WIDTH
                else f"halving the images, to bring {large} within {MAX_WIDTH} px, would leave the median "
                     f"image under {MIN_PATCH} px")
    return (f"the images at {scale:g} of their size, where {large} are {width * scale:g} px, within {MAX_WIDTH} "
            f"px (or as near as keeps the median image at least {MIN_PATCH} px); {back}")


def at_scale(fingerprint: dict, scale: float) -> dict:
    """The fingerprint's sizes as the network sees them, the images resized by `scale`."""
    if scale == 1:
        return fingerprint
    objects = fingerprint["objects"]
    return {**fingerprint,
            "train_shapes": [list(scaled_shape(s, scale)) for s in fingerprint["train_shapes"]],
            "val_shapes": [list(scaled_shape(s, scale)) for s in fingerprint["val_shapes"]],
            "median_shape": list(scaled_shape(fingerprint["median_shape"], scale)),
            "median_short_side": max(1, round(fingerprint["median_short_side"] * scale)),
            "objects": {**objects, "median_area": objects["median_area"] * scale**2,
                        "p95_diameter": round(objects["p95_diameter"] * scale, 2),
                        "p95_width": round(objects["p95_width"] * scale, 2),
                        "typical_diameter": round(objects["typical_diameter"] * scale, 2)}}


def rounds(plan: Planner, steps: int, train_patches: int, batch: int) -> tuple[int, int]:
    """Validation rounds (epochs) and the steps between them; a pinned one is kept, the other follows."""
    pass_steps = math.ceil(train_patches / batch)
    planned = min(ROUNDS[1], max(ROUNDS[0], round(steps / pass_steps)))
    epochs = plan.decide("train.epochs", planned,
                         f"{steps} steps planned = {steps / pass_steps:.1f} passes over the augmented patches: "
                         f"a validation round per pass, {ROUNDS[0]} to {ROUNDS[1]} rounds")
    over = "the pinned train.epochs" if plan.params.train.epochs != "auto" else "the epochs"
    steps_per_epoch = plan.decide("train.steps_per_epoch", max(1, math.ceil(steps / epochs)),
                                  f"the planned steps spread over {over}")
    return epochs, steps_per_epoch


class CostModel:
    """Seconds of training from FLOPs: the wanted training and what the budget allows."""

    def __init__(self, params, fingerprint: dict, patch: int, depth: int):
        self.params, self.fingerprint, self.patch, self.depth = params, fingerprint, patch, depth
        self.budget_s = params.plan.train_minutes * 60
        padded = sum(max(h, patch) * max(w, patch) for h, w in fingerprint["train_shapes"])
        self.wanted_patches = PIXEL_VISITS * padded / patch**2

    def forward_flops(self, filters: int) -> int:
        m = self.params.model
        return unet_flops(self.patch, self.fingerprint["channels"], self.depth, filters,
                          self.fingerprint["num_classes"], m.upsampling)

    def seconds_per_forward(self, filters: int) -> float:
        """FLOPs over throughput; normalisation layers add time that FLOPs of convolutions miss."""
        slowdown = normalisation_cost(self.params.model.batchnorm)
        return slowdown * self.forward_flops(filters) / (self.params.plan.gflops * 1e9)

    def seconds_per_step(self, filters: int, batch: int) -> float:
        work = train_step_gflop(self.forward_flops(filters), batch, self.params.model.batchnorm)
        return work / self.params.plan.gflops

    def wanted_steps(self, batch: int) -> int:
        return max(MIN_STEPS, math.ceil(self.wanted_patches / batch))

    def widest(self, candidates, batch: int) -> int:
        fitting = [f for f in candidates
                   if self.wanted_steps(batch) * self.seconds_per_step(f, batch) * HEADROOM <= self.budget_s]
        return max(fitting, default=min(candidates))

    def steps(self, filters: int, batch: int) -> int:
        affordable = int(self.budget_s / self.seconds_per_step(filters, batch))
        return max(1, min(self.wanted_steps(batch), affordable))

    def estimate(self, filters: int, batch: int, steps: int, epochs: int, val_patches: int) -> dict:
        train_s = steps * self.seconds_per_step(filters, batch)
        val_s = epochs * val_patches * self.seconds_per_forward(filters)
        return {
            "train_gflop_per_patch": round(TRAIN_FLOPS_PER_FORWARD * self.forward_flops(filters) / 1e9, 3),
            "steps": steps,
            "patches_seen": steps * batch,
            "pixel_visits": round(steps * batch * self.patch**2 / sum(h * w for h, w in self.fingerprint["train_shapes"]), 1),
            "train_minutes": round((train_s + val_s) / 60, 2),
        }


def train_step_gflop(forward_flops: int, batch: int, batchnorm: bool) -> float:
    """A training step's work as the cost model counts it: forward and backward of each patch (batch
    normalisation at its measured cost), plus the step's fixed cost."""
    return STEP_GFLOP + batch * normalisation_cost(batchnorm) * TRAIN_FLOPS_PER_FORWARD * forward_flops / 1e9


def normalisation_cost(batchnorm: bool) -> float:
    """How many times as long a patch takes with the network's normalisation layers as without."""
    return BATCHNORM_COST if batchnorm else 1.0


def count_patches(shapes, patch: int, stride: int, fg_fraction: float, grid_fraction: float = 1.0) -> int:
    """Exactly what `unetseg.patches.extract_patches` cuts from images of these sizes (assuming
    every mask holds some foreground, as oversampling needs)."""
    total = 0
    for height, width in shapes:
        grid = kept_count(len(grid_corners((max(height, patch), max(width, patch)), patch, stride)), grid_fraction)
        total += grid + oversampled_count(grid, fg_fraction)
    return total


def _check_sizes(params, depth: int, patch: int) -> None:
    try:
        check_divisible("extract.patch_size", patch, depth)
        check_divisible("predict.tile_size", params.predict.tile_size, depth)
    except ValueError as exc:
        raise UserError(f"params.yaml: {exc}") from None
    stride = params.extract.stride
    if stride != "auto" and stride > patch:
        raise UserError(f"params.yaml: extract.stride={stride} must be <= the patch size ({patch}), "
                        "or pixels between patches would never be seen")


def stage_values(plan: dict) -> dict[str, dict]:
    """The planned values each consumer stage reads, one file each, so that a change reruns only it."""
    readers = {"extract": ("extract.",), "augment": ("augment.",), "train": ("model.", "train."),
               "predict": ("predict.",)}
    return {stage: {key: value for key, value in plan["values"].items() if key.startswith(prefixes)}
            for stage, prefixes in readers.items()}


def describe(plan: dict) -> list[str]:
    """One printable line per planned value, with its reason, then the cost estimate."""
    lines = [f"{key} = {value}: {plan['reasons'][key]}" for key, value in plan["values"].items()]
    e = plan["estimate"]
    lines.append(f"training ~ {e['train_minutes']:g} min at plan.gflops={plan['budget']['gflops']:g} "
                 f"({e['steps']} steps, {e['patches_seen']} patches, each training pixel seen ~{e['pixel_visits']:g}x; "
                 f"budget plan.train_minutes={plan['budget']['train_minutes']:g})")
    return lines
