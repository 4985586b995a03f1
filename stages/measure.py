"""Stage measure: count and measure the objects that predict found in each test image.

data/objects/<stem>.csv: one row per object (area, centroid, box, shape, and the mean and total
intensity of each channel in the image file's own values, as data.images holds them);
data/objects/summary.csv: one row per test image (objects, those cut by the border, the foreground's
share, the whole objects' median and mean size); a region that prepare cut (prepare.regions) counts
as an image. Given the pixel size (measure.pixel_size: µm per pixel, or auto: each image's own, as its
TIFF records it) both gain µm columns and the summary the objects per mm². Columns: unetseg/measure.py.
Its own stage, so setting the pixel size reruns this alone, in seconds.
"""

from pathlib import Path

from stages.common import atomic_dir, load_stage_params, read_json, run_stage
from unetseg.imageio import in_region, read_image, read_mask
from unetseg.measure import pixel_size_for, write_measured_image, write_summary

PREPARED, PREDICTIONS, OUT = Path("data/prepared"), Path("data/predictions"), "data/objects"


def main(argv) -> None:
    params = load_stage_params(argv, __doc__)
    pixel_size = params.measure.pixel_size
    manifest = read_json(PREPARED / "manifest.json")
    stems = manifest["splits"]["test"] if manifest["num_classes"] == 1 else []  # objects are for one class
    sizes = {stem: pixel_size_for(pixel_size, manifest["images"][stem]["image"]) for stem in stems}
    with atomic_dir(OUT) as out:
        summaries = []
        for stem in stems:
            labels = read_mask(PREDICTIONS / f"{stem}_instances.png")
            entry = manifest["images"][stem]
            image = in_region(read_image(entry["image"], manifest["channels"]), entry.get("region"))
            summaries.append(write_measured_image(out / f"{stem}.csv", stem, labels, image, sizes[stem]))
        write_summary(out / "summary.csv", summaries)
    counted = sum(summary["objects"] for summary in summaries)
    note = "" if stems else f" (data.num_classes={manifest['num_classes']}: objects are for one class)"
    print(f"measure: {counted} objects in {len(stems)} test images -> {OUT}/{note}")
    if stems:
        print(f"measure: {pixel_size_note(pixel_size, list(sizes.values()))}")


def pixel_size_note(setting, sizes: list) -> str:
    if setting != "auto":
        return f"pixel size {setting} µm (measure.pixel_size)" if setting else "in pixels (measure.pixel_size: null)"
    known = sorted({size for size in sizes if size})
    if not known:
        return ("in pixels: no image file records its pixel size (an ImageJ, OME or per-centimetre TIFF would); "
                "set measure.pixel_size to your microscope's µm per pixel for µm columns")
    shown = ", ".join(f"{size:g}" for size in known[:3]) + (", ..." if len(known) > 3 else "")
    return f"pixel size {shown} µm, as recorded by {sum(map(bool, sizes))} of {len(sizes)} image files"


if __name__ == "__main__":
    run_stage(main)
