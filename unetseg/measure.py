"""What a user counts and measures: one row per object of a label image, in pixels and in the image's
own intensity units (the file's values, before any normalisation), as a CSV table; per image a summary.

Columns: object (its id in the label image), area_px, centroid_y / centroid_x, bbox_top / bbox_left /
bbox_bottom / bbox_right (bottom and right exclusive, as in array slices), equivalent_diameter_px
(of the disc of that area), perimeter_px, eccentricity (0 for a disc), solidity (area / convex
hull area), touches_edge (cut by the image border: its size and shape are not all there), then per
channel mean_intensity and total_intensity (the sum over the object, e.g. a nucleus's DNA content).
Given the pixel size (µm per pixel), the lengths and the area also in µm: area_um2, centroid_y_um,
centroid_x_um, equivalent_diameter_um, perimeter_um.

Per image, a summary row: the objects, those cut by the border, the foreground's share of the image,
and the median and mean size of the whole objects (those not cut by the border; empty when there are
none), in µm too given the pixel size (then in the row too), with the objects per mm². The pixel size
is measure.pixel_size, or with `auto` each image's own as its TIFF records it (pixel_size_for): a
table of images of which only some record one leaves the others' µm cells empty.
"""

import csv

import numpy as np
from skimage.measure import regionprops

from unetseg.files import atomic_file
from unetseg.imageio import pixel_size_of

SHAPE_COLUMNS = ("object", "area_px", "centroid_y", "centroid_x", "bbox_top", "bbox_left", "bbox_bottom",
                 "bbox_right", "equivalent_diameter_px", "perimeter_px", "eccentricity", "solidity", "touches_edge")
LENGTHS = ("centroid_y", "centroid_x", "equivalent_diameter_px", "perimeter_px")  # in µm: x pixel_size
UM_LENGTHS = {name: f"{name.removesuffix('_px')}_um" for name in LENGTHS}
UM_COLUMNS = ("area_um2", *UM_LENGTHS.values())
RGB_NAMES = ("_red", "_green", "_blue")
SUMMARY_COLUMNS = ("image", "objects", "objects_touching_edge", "foreground_fraction", "median_area_px",
                   "mean_area_px", "median_equivalent_diameter_px")
SUMMARY_UM_COLUMNS = ("pixel_size_um", "objects_per_mm2", "median_area_um2", "mean_area_um2", "median_equivalent_diameter_um")
DECIMALS = 4


def pixel_size_for(setting, path) -> float | None:
    """µm per pixel of an image file as measure.pixel_size gives it: its own with auto, else the setting."""
    return pixel_size_of(path) if setting == "auto" else setting


def intensity_columns(channels: int) -> tuple[str, ...]:
    return tuple(f"{kind}_intensity{name}" for kind in ("mean", "total") for name in channel_names(channels))


def channel_names(channels: int) -> tuple[str, ...]:
    """Column suffixes of an image's channels: none for gray, _red/_green/_blue for RGB, else _c1, _c2..."""
    return ("",) if channels == 1 else RGB_NAMES if channels == 3 else tuple(f"_c{i + 1}" for i in range(channels))


def object_columns(channels: int | None = None, pixel_size: float | None = None) -> tuple[str, ...]:
    """The objects' table's header: shape, µm given a pixel size, intensities given an image's channels."""
    return (SHAPE_COLUMNS + (UM_COLUMNS if pixel_size else ())
            + (intensity_columns(channels) if channels else ()))


def summary_columns(pixel_size: float | None = None) -> tuple[str, ...]:
    return SUMMARY_COLUMNS + (SUMMARY_UM_COLUMNS if pixel_size else ())


def object_measurements(labels: np.ndarray, image: np.ndarray | None = None,
                        pixel_size: float | None = None) -> list[dict]:
    """One row per object of an (H, W) label image (0 = background), in order of id; with an
    (H, W, C) image, each channel's mean and total intensity over the object; with the pixel size
    (µm), the lengths and area in µm too."""
    height, width = labels.shape
    rows = []
    for region in regionprops(np.asarray(labels, np.int64)):
        top, left, bottom, right = region.bbox
        y, x = region.centroid
        row = {"object": region.label, "area_px": int(region.area), "centroid_y": y, "centroid_x": x,
               "bbox_top": top, "bbox_left": left, "bbox_bottom": bottom, "bbox_right": right,
               "equivalent_diameter_px": region.equivalent_diameter_area, "perimeter_px": region.perimeter,
               "eccentricity": region.eccentricity, "solidity": region.solidity,
               "touches_edge": int(top == 0 or left == 0 or bottom == height or right == width)}
        if pixel_size:
            row["area_um2"] = region.area * pixel_size**2
            row.update((um, row[name] * pixel_size) for name, um in UM_LENGTHS.items())
        if image is not None:
            values = image[region.coords[:, 0], region.coords[:, 1]].astype(np.float64)
            sums = values.sum(axis=0)
            row.update(zip(intensity_columns(image.shape[-1]), (*sums / len(values), *sums)))
        rows.append(row)
    return rows


def image_summary(name: str, labels: np.ndarray, rows: list[dict], pixel_size: float | None = None) -> dict:
    """One image's summary row from its label image and its objects' rows (object_measurements)."""
    whole = [row for row in rows if not row["touches_edge"]]
    areas = np.array([row["area_px"] for row in whole], np.float64)
    diameters = np.array([row["equivalent_diameter_px"] for row in whole], np.float64)
    summary = {"image": name, "objects": len(rows), "objects_touching_edge": len(rows) - len(whole),
               "foreground_fraction": float(np.count_nonzero(labels)) / labels.size,
               "median_area_px": _median(areas), "mean_area_px": areas.mean() if len(whole) else None,
               "median_equivalent_diameter_px": _median(diameters)}
    if pixel_size:
        square_mm = labels.size * (pixel_size / 1000) ** 2
        summary.update({"pixel_size_um": pixel_size, "objects_per_mm2": len(rows) / square_mm,
                        "median_area_um2": _scaled(summary["median_area_px"], pixel_size**2),
                        "mean_area_um2": _scaled(summary["mean_area_px"], pixel_size**2),
                        "median_equivalent_diameter_um": _scaled(summary["median_equivalent_diameter_px"],
                                                                 pixel_size)})
    return summary


def write_measurements(path, labels: np.ndarray, image: np.ndarray | None = None,
                       pixel_size: float | None = None) -> list[dict]:
    """The objects' table as CSV (a header only when there are none); written whole or not at all.
    Returns its rows."""
    rows = object_measurements(labels, image, pixel_size)
    write_table(path, object_columns(None if image is None else image.shape[-1], pixel_size), rows)
    return rows


def write_measured_image(path, name: str, labels: np.ndarray, image: np.ndarray | None = None,
                         pixel_size: float | None = None) -> dict:
    """One image's objects' table written to `path` (write_measurements); returns its summary row."""
    return image_summary(name, labels, write_measurements(path, labels, image, pixel_size), pixel_size)


def write_summary(path, summaries: list[dict]) -> None:
    """The images' summary rows as CSV, with the µm columns where some image has a pixel size."""
    write_table(path, summary_columns(any(row.get("pixel_size_um") for row in summaries)), summaries)


def write_table(path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """A CSV of these columns of the rows (None or missing: an empty cell); written whole or not at all."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])


def _median(values: np.ndarray):
    return float(np.median(values)) if len(values) else None


def _scaled(value, factor: float):
    return None if value is None else value * factor


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return value if isinstance(value, str) else int(value)
