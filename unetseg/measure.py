"""What a user counts and measures: one row per object of a label image, in pixels and in the image's
own intensity units (the file's values, before any normalisation), as a CSV table beside the objects.

Columns: object (its id in the label image), area_px, centroid_y / centroid_x, bbox_top / bbox_left /
bbox_bottom / bbox_right (bottom and right exclusive, as in array slices), equivalent_diameter_px
(of the disc of that area), perimeter_px, eccentricity (0 for a disc), solidity (area / convex
hull area), touches_edge (cut by the image border: its size and shape are not all there), then per
channel mean_intensity and total_intensity (the sum over the object, e.g. a nucleus's DNA content).
"""

import csv

import numpy as np
from skimage.measure import regionprops

from unetseg.files import atomic_file

SHAPE_COLUMNS = ("object", "area_px", "centroid_y", "centroid_x", "bbox_top", "bbox_left", "bbox_bottom",
                 "bbox_right", "equivalent_diameter_px", "perimeter_px", "eccentricity", "solidity", "touches_edge")
CHANNEL_NAMES = {1: ("",), 3: ("_red", "_green", "_blue")}  # images are gray or RGB (unetseg.imageio)
DECIMALS = 4


def intensity_columns(channels: int) -> tuple[str, ...]:
    return tuple(f"{kind}_intensity{name}" for kind in ("mean", "total") for name in CHANNEL_NAMES[channels])


def object_measurements(labels: np.ndarray, image: np.ndarray | None = None) -> list[dict]:
    """One row per object of an (H, W) label image (0 = background), in order of id; with an
    (H, W, C) image, each channel's mean and total intensity over the object."""
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
        if image is not None:
            values = image[region.coords[:, 0], region.coords[:, 1]].astype(np.float64)
            sums = values.sum(axis=0)
            row.update(zip(intensity_columns(image.shape[-1]), (*sums / len(values), *sums)))
        rows.append(row)
    return rows


def write_measurements(path, labels: np.ndarray, image: np.ndarray | None = None) -> None:
    """The objects' table as CSV (a header only when there are none); written whole or not at all."""
    columns = SHAPE_COLUMNS + (intensity_columns(image.shape[-1]) if image is not None else ())
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in object_measurements(labels, image):
            writer.writerow([_cell(row[column]) for column in columns])


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return int(value)
