"""Stage synthesize: the embedded default dataset as PNG, like a user's data: images/, masks/ (0/255)
and labels/ (uint16 nucleus ids, 0 = background)."""

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
        labels = stack.enter_context(atomic_dir(f"{OUT}/labels"))
        for name, image, nuclei in tqdm(generated, total=cfg.num_images, desc="synthesize"):
            write_png(images / f"{name}.png", image)
            write_png(masks / f"{name}.png", (nuclei > 0).astype("uint8") * 255)
            write_png(labels / f"{name}.png", nuclei.astype("uint16"))
    print(f"synthesize: {cfg.num_images} images with their masks and labels -> {OUT}/")


if __name__ == "__main__":
    run_stage(main)
