"""Stage synthesize: the embedded default dataset (images/ and masks/ as PNG, like a user's data)."""

from contextlib import ExitStack

from tqdm import tqdm

from stages.common import atomic_dir, load_stage_params, run_stage
from unetseg.imageio import write_png
from unetseg.synthetic import synthesize_dataset

OUT = "data/synthetic"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    cfg = params.synthesize
    generated = synthesize_dataset(params.base.seed, cfg.num_images, cfg.min_size, cfg.max_size,
                                   cfg.nuclei_per_image)
    with ExitStack() as stack:
        images = stack.enter_context(atomic_dir(f"{OUT}/images"))
        masks = stack.enter_context(atomic_dir(f"{OUT}/masks"))
        for name, image, mask in tqdm(generated, total=cfg.num_images, desc="synthesize"):
            write_png(images / f"{name}.png", image)
            write_png(masks / f"{name}.png", mask.astype("uint8") * 255)


if __name__ == "__main__":
    run_stage(main)
