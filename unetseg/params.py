"""The schema of params.yaml: every knob, its type and range. Unknown keys are refused."""

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unetseg.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Auto = Literal["auto"]  # "the plan stage decides" (unetseg/plan.py); a value pins the knob
OBJECT_TARGETS = ("boundary", "weighted")  # the targets whose objects a seeded watershed parts


def auto_or(kind, **limits):
    return Union[Auto, Annotated[kind, Field(**limits)]]


class Probability(Section):
    p: float = Field(0.5, ge=0, le=1)


class Base(Section):
    seed: int = Field(42, ge=0)


class Data(Section):
    images: str = "data/synthetic/images"
    masks: str = "data/synthetic/labels"
    num_classes: int = Field(1, ge=1, le=255)
    channels: auto_or(int, ge=1, le=8) = "auto"  # le: unetseg.imageio.MAX_CHANNELS
    mask_type: Literal["auto", "semantic", "instances"] = "auto"
    target: Literal["auto", "binary", "boundary", "weighted"] = "auto"
    boundary_width: int = Field(2, ge=1, le=16)
    border_weight: float = Field(10.0, ge=0)   # the weighted target's w0
    border_sigma: float = Field(5.0, gt=0)     # ... and its sigma, px (also contact_weight's)
    contact_weight: float = Field(0.0, ge=0)   # the boundary target's w0 (0: no loss weights)

    @model_validator(mode="after")
    def _instances_are_one_class(self):
        if self.num_classes > 1 and (self.mask_type == "instances" or self.target in OBJECT_TARGETS):
            raise ValueError("instance masks and the boundary and weighted targets need num_classes: 1 "
                             "(objects of one class)")
        if self.contact_weight > 0 and self.target in ("binary", "weighted"):
            raise ValueError(f"contact_weight weights the boundary target's loss, not the {self.target} "
                             "target's: set target: boundary (or auto, for instance masks), or contact_weight: 0")
        return self


class Synthesize(Section):
    num_images: int = Field(48, ge=3)
    min_size: int = Field(200, ge=32)
    max_size: int = Field(320, ge=32)
    nuclei_per_image: tuple[int, int] = (12, 40)

    @model_validator(mode="after")
    def _ranges(self):
        if self.min_size > self.max_size:
            raise ValueError("min_size must be <= max_size")
        if not 1 <= self.nuclei_per_image[0] <= self.nuclei_per_image[1]:
            raise ValueError("nuclei_per_image must be [low, high] with 1 <= low <= high")
        return self


class Split(Section):
    train: list[str]
    val: list[str]
    test: list[str]


class Prepare(Section):
    normalize: Literal["percentile", "dataset"] = "percentile"
    percentiles: tuple[float, float] = (1.0, 99.8)
    invert: Literal["auto", "none", "bright_background"] = "none"
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.15, ge=0, lt=1)
    split: Optional[Split] = None
    regions: auto_or(int, ge=1, le=16) = "auto"
    unpaired: Literal["error", "skip"] = "error"

    @model_validator(mode="after")
    def _ranges(self):
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError("percentiles must be [low, high] with 0 <= low < high <= 100")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be < 1 to leave training images")
        return self


class Plan(Section):
    train_minutes: float = Field(21.0, gt=0)
    gflops: float = Field(180.0, gt=0)


class Extract(Section):
    scale: auto_or(float, gt=0, le=4) = "auto"
    patch_size: auto_or(int, ge=16) = "auto"
    stride: auto_or(int, ge=1) = "auto"
    fg_fraction: auto_or(float, ge=0, lt=1) = "auto"
    grid_fraction: auto_or(float, gt=0, le=1) = "auto"
    val_grid_fraction: auto_or(float, gt=0, le=1) = "auto"
    shard_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _stride_covers_every_pixel(self):
        if "auto" not in (self.stride, self.patch_size) and self.stride > self.patch_size:
            raise ValueError(f"stride must be <= patch_size ({self.patch_size}), or pixels between "
                             "patches would never be seen")
        return self


class Affine(Probability):
    max_rotation: float = Field(15.0, ge=0, le=180)
    max_scale: float = Field(0.1, ge=0, lt=1)


class Elastic(Probability):
    grid: int = Field(3, ge=2)
    sigma: float = Field(10.0, ge=0)


class Intensity(Probability):
    brightness: float = Field(0.1, ge=0, le=1)
    contrast: float = Field(0.2, ge=0, lt=1)
    gamma: float = Field(0.2, ge=0, lt=1)


class Noise(Probability):
    sigma: float = Field(0.03, ge=0, le=1)


class Blur(Probability):
    sigma: tuple[float, float] = (0.5, 1.5)

    @model_validator(mode="after")
    def _ranges(self):
        if not 0 <= self.sigma[0] <= self.sigma[1]:
            raise ValueError("sigma must be [low, high] with 0 <= low <= high")
        return self


class Augment(Section):
    copies: auto_or(int, ge=0) = "auto"
    flip: Probability = Probability(p=0.5)
    rot90: Probability = Probability(p=0.5)
    affine: Affine = Affine(p=0.3)
    elastic: Elastic = Elastic(p=0.5)
    intensity: Intensity = Intensity(p=0.5)
    noise: Noise = Noise(p=0.3)
    blur: Blur = Blur(p=0.2)


class Model(Section):
    depth: auto_or(int, ge=1, le=6) = "auto"
    base_filters: auto_or(int, ge=1) = "auto"
    batchnorm: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    upsampling: Literal["transpose", "bilinear"] = "transpose"


class Train(Section):
    epochs: auto_or(int, ge=1) = "auto"
    steps_per_epoch: auto_or(int, ge=1) = "auto"
    batch_size: auto_or(int, ge=1) = "auto"
    learning_rate: float = Field(1e-3, gt=0)
    lr_schedule: Literal["cosine", "poly", "plateau"] = "cosine"
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    loss: Union[Auto, Literal["dice", "bce", "bce_dice"]] = "auto"
    bce_weight: float = Field(1.0, ge=0)
    dice_weight: float = Field(1.0, ge=0)
    dice_smooth: float = Field(1.0, ge=0)
    keep: Literal["auto", "best", "last"] = "auto"  # the epoch whose weights are saved: training.kept_epoch
    sampling: Literal["image", "patch"] = "image"
    random_flips: bool = True
    early_stopping_patience: int = Field(8, ge=1)
    reduce_lr_patience: int = Field(4, ge=1)
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"  # tf_training.resolve_precision
    jit_compile: bool = False
    deterministic: bool = True  # false: TensorFlow may pick faster non-deterministic (GPU) kernels


class Predict(Section):
    tile_size: auto_or(int, ge=16) = Field("auto", description="side of the square tiles the model sees, a "
                                           "multiple of 2**depth; auto: the plan's (for new images: the predict "
                                           "stage's for the model, else 256)")
    overlap: float = Field(0.5, ge=0, lt=1, description="fraction of a tile shared with its neighbours")
    blend: Literal["gaussian", "constant"] = Field("gaussian", description="weighting of overlapping tiles")
    batch_size: int = Field(8, ge=1, description="tiles per model call")
    max_whole_pixels: int = Field(2**21, ge=0, description="an image whose mirror-padded area is at most this "
                                  "goes through the model whole, in one call (no tile seams); larger ones in "
                                  "tiles. Bounds memory: 2**21 px take 0.3-0.5 GiB with base_filters 8; 0: "
                                  "always tiles")
    tta: Literal["none", "flips", "dihedral"] = Field("dihedral", description="test-time augmentation: average "
                                                      "the predictions of the image's views, mapped back: none; "
                                                      "flips, the image and its two mirror images (3 calls); "
                                                      "dihedral, its 4 rotations and their mirror images (8)")
    threshold: auto_or(float, gt=0, lt=1) = Field("auto", description="foreground where its probability is at "
                                                  "least this; auto: for one output class, chosen on the "
                                                  "validation images for the best Dice, 0.5 for new images")
    seeds: Literal["auto", "maxima", "threshold"] = Field("auto", description="boundary and weighted targets: "
                                                          "where objects grow from in p(interior), or p(foreground): "
                                                          "maxima, one seed per peak of the map smoothed; threshold, "
                                                          "one per region above seed_threshold; auto: maxima for "
                                                          "the boundary target, threshold for the weighted")
    seed_threshold: auto_or(float, gt=0, lt=1) = Field("auto", description="seeds threshold: objects grow from "
                                                       "regions where p(interior), or p(foreground), is at least "
                                                       "this; auto: chosen on the validation images, 0.5 for new "
                                                       "images")
    seed_sigma: auto_or(float, gt=0) = Field("auto", description="seeds maxima: px of the Gaussian that smooths "
                                             "the map; auto: chosen on the validation images, 2 for new images")
    seed_depth: auto_or(float, gt=0, lt=1) = Field("auto", description="seeds maxima: how far a peak must rise "
                                                   "above the pass to a higher one to seed an object of its own; "
                                                   "auto: chosen on the validation images, 0.05 for new images")
    prob_dtype: Literal["uint8", "float16"] = Field("uint8", description="probability maps as p*255 PNG/npy "
                                                    "(uint8) or float16 .npy")
    min_object_size: auto_or(int, ge=0) = Field("auto", description="objects under this many pixels are "
                                                "dropped; auto: chosen on the validation images, 0 for new images")

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_as_it_was(cls, value):
        """tta was a switch: true meant the flips, false none."""
        return ("flips" if value else "none") if isinstance(value, bool) else value


class Measure(Section):
    pixel_size: Optional[auto_or(float, gt=0)] = Field("auto", description="µm per pixel of the images: the "
                                                      "objects' tables gain µm columns; auto: each image's own, "
                                                      "as its TIFF records it; null: pixels only")


class Evaluate(Section):
    thresholds: list[float] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    overlays: int = Field(2, ge=0)


class Params(Section):
    base: Base = Base()
    data: Data = Data()
    synthesize: Synthesize = Synthesize()
    prepare: Prepare = Prepare()
    plan: Plan = Plan()
    extract: Extract = Extract()
    augment: Augment = Augment()
    model: Model = Model()
    train: Train = Train()
    predict: Predict = Predict()
    measure: Measure = Measure()
    evaluate: Evaluate = Evaluate()

    @model_validator(mode="after")
    def _sizes_fit_the_network(self):
        if self.model.depth != "auto":
            for key, size in (("extract.patch_size", self.extract.patch_size),
                              ("predict.tile_size", self.predict.tile_size)):
                check_divisible(key, size, self.model.depth)
        return self


def check_divisible(key: str, size, depth: int) -> None:
    """A pinned patch or tile size must survive `depth` halvings."""
    step = 2**depth
    if size != "auto" and size % step:
        raise ValueError(f"{key}={size} must be divisible by 2**model.depth = {step} "
                         f"(the U-Net halves it {depth} times): try {max(step, size // step * step)}")


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a params mapping; any problem becomes one UserError line naming the key."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        raise UserError(f"{source}: {_describe(*exc.errors()[:2])}") from None


def with_predict(params: Params, changes: dict, source: str = "params.yaml") -> Params:
    """`params` with these keys of the predict section replaced, validated like params.yaml."""
    return with_section(params, "predict", changes, source)


def with_section(params: Params, section: str, changes: dict, source: str = "params.yaml") -> Params:
    """`params` with these keys of one section replaced, validated like params.yaml."""
    raw = params.model_dump()
    raw[section].update(changes)
    return parse_params(raw, source)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run from the project root or pass the params file") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if raw is not None and not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections (base, data, prepare, ...)")
    return parse_params(raw, str(path))


AUTO_MEANINGS = {"measure.pixel_size": "each image's own, from its file"}  # the others: the plan's
UNION_MEMBERS = ("literal['auto']", "int", "float", "literal['dice','bce','bce_dice']")


def _describe(error: dict, alternative: dict | None = None) -> str:
    key = ".".join(str(part) for part in error["loc"] if part not in UNION_MEMBERS)
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}' (a typo? the keys are listed in params.yaml and README.md)"
    message = error["msg"].removeprefix("Value error, ")
    if "literal['auto']" in error["loc"] and alternative:
        meaning = AUTO_MEANINGS.get(key, "the plan decides")
        message = f"must be auto ({meaning}) or " + alternative["msg"].removeprefix("Input should be ")
    got = error.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{key}: {message}{shown}" if key else message
