"""Stage measure: count and measure the objects that predict found in each test image.

data/objects/<stem>.csv: one row per object (area, centroid, box, shape, and the mean and total
intensity of each channel in the image file's own values, as data.images holds them);
data/objects/summary.csv: one row per test image (objects, those cut by the border, the foreground's
share, the whole objects' median and mean size). With measure.pixel_size (µm per pixel) both gain µm
columns and the summary the objects per mm². Columns: unetseg/measure.py. Its own stage, so setting
the pixel size reruns this alone, in seconds.
"""

from pathlib import Path

from stages.common import atomic_dir, load_stage_params, read_json, run_stage
from unetseg.imageio import read_image, read_mask
from unetseg.measure import image_summary, summary_columns, write_measurements, write_table

PREPARED, PREDICTIONS, OUT = Path("data/prepared"), Path("data/predictions"), "data/objects"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    pixel_size = params.measure.pixel_size
    manifest = read_json(PREPARED / "manifest.json")
    stems = manifest["splits"]["test"] if manifest["num_classes"] == 1 else []  # objects are for one class
    with atomic_dir(OUT) as out:
        summaries = []
        for stem in stems:
            labels = read_mask(PREDICTIONS / f"{stem}_instances.png")
            image = read_image(manifest["images"][stem]["image"], manifest["channels"])
            rows = write_measurements(out / f"{stem}.csv", labels, image, pixel_size)
            summaries.append(image_summary(stem, labels, rows, pixel_size))
        write_table(out / "summary.csv", summary_columns(pixel_size), summaries)
    counted = sum(summary["objects"] for summary in summaries)
    note = "" if stems else f" (data.num_classes={manifest['num_classes']}: objects are for one class)"
    print(f"measure: {counted} objects in {len(stems)} test images -> {OUT}/{note}")


if __name__ == "__main__":
    run_stage(main)
