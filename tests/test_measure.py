import csv

import numpy as np
import pytest
import tifffile

from unetseg.measure import (SHAPE_COLUMNS, SUMMARY_COLUMNS, UM_COLUMNS, image_summary, intensity_columns,
                             object_measurements, pixel_size_for, summary_columns, write_measurements, write_table)


@pytest.fixture
def two_objects():
    """A 4x5 rectangle inside the image and a 3x3 square in its corner."""
    labels = np.zeros((20, 30), np.uint16)
    labels[5:9, 10:15] = 7
    labels[0:3, 27:30] = 2
    return labels


def test_shape_columns_by_hand(two_objects):
    corner, rectangle = object_measurements(two_objects)
    assert rectangle["object"] == 7 and corner["object"] == 2
    assert rectangle["area_px"] == 20 and corner["area_px"] == 9
    assert (rectangle["centroid_y"], rectangle["centroid_x"]) == (6.5, 12.0)
    assert [rectangle[k] for k in ("bbox_top", "bbox_left", "bbox_bottom", "bbox_right")] == [5, 10, 9, 15]
    assert rectangle["equivalent_diameter_px"] == pytest.approx(2 * np.sqrt(20 / np.pi))
    assert rectangle["solidity"] == 1.0 and corner["eccentricity"] == pytest.approx(0.0)
    assert rectangle["touches_edge"] == 0 and corner["touches_edge"] == 1


def test_intensities_are_the_images_own_values_gray_and_rgb(two_objects):
    gray = np.zeros((20, 30, 1), np.uint16)
    gray[5:9, 10:15] = 1000
    gray[5, 10] = 3000
    (_, rectangle) = object_measurements(two_objects, gray)
    assert rectangle["mean_intensity"] == pytest.approx((19 * 1000 + 3000) / 20)
    assert rectangle["total_intensity"] == 19 * 1000 + 3000  # no uint16 overflow

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[0:3, 27:30] = (255, 10, 0)
    corner, _ = object_measurements(two_objects, rgb)
    assert (corner["mean_intensity_red"], corner["mean_intensity_green"], corner["mean_intensity_blue"]) == (255, 10, 0)
    assert corner["total_intensity_red"] == 9 * 255


def test_the_table_has_a_row_per_object_and_only_a_header_when_there_are_none(tmp_path, two_objects):
    path = tmp_path / "a_objects.csv"
    write_measurements(path, two_objects, np.ones((20, 30, 1), np.uint8))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*SHAPE_COLUMNS, *intensity_columns(1)]
    assert [row["object"] for row in rows] == ["2", "7"]
    assert rows[1]["area_px"] == "20" and rows[1]["centroid_y"] == "6.5" and rows[1]["mean_intensity"] == "1"

    write_measurements(path, np.zeros((4, 4), np.int32))
    assert path.read_text().strip() == ",".join(SHAPE_COLUMNS)


def test_lengths_and_areas_in_microns_given_the_pixel_size(two_objects):
    corner, rectangle = object_measurements(two_objects, pixel_size=0.5)
    assert rectangle["area_um2"] == 5.0 and corner["area_um2"] == 2.25
    assert (rectangle["centroid_y_um"], rectangle["centroid_x_um"]) == (3.25, 6.0)
    assert rectangle["equivalent_diameter_um"] == pytest.approx(np.sqrt(20 / np.pi))
    assert rectangle["perimeter_um"] == pytest.approx(rectangle["perimeter_px"] / 2)
    assert not UM_COLUMNS & object_measurements(two_objects)[0].keys()


def test_the_summary_sizes_only_the_objects_not_cut_by_the_border(two_objects, tmp_path):
    rows = object_measurements(two_objects, pixel_size=2.0)
    summary = image_summary("a", two_objects, rows, pixel_size=2.0)
    assert summary["objects"] == 2 and summary["objects_touching_edge"] == 1
    assert summary["foreground_fraction"] == pytest.approx(29 / 600)
    assert summary["median_area_px"] == summary["mean_area_px"] == 20 and summary["median_area_um2"] == 80
    assert summary["objects_per_mm2"] == pytest.approx(2 / (600 * 4e-6))
    corner_only = two_objects * (two_objects == 2)
    empty = image_summary("b", corner_only, object_measurements(corner_only))
    assert empty["objects"] == 1 and empty["median_area_px"] is None and "median_area_um2" not in empty
    path = tmp_path / "summary.csv"
    write_table(path, summary_columns(), [empty])
    with open(path, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert list(row) == list(SUMMARY_COLUMNS) and row["median_area_px"] == "" and row["objects"] == "1"


def test_a_table_of_images_with_and_without_a_pixel_size_leaves_the_others_um_cells_empty(two_objects, tmp_path):
    sized = image_summary("a", two_objects, object_measurements(two_objects, pixel_size=0.5), pixel_size=0.5)
    unsized = image_summary("b", two_objects, object_measurements(two_objects))
    path = tmp_path / "summary.csv"
    write_table(path, summary_columns(0.5), [sized, unsized])
    with open(path, newline="") as handle:
        a, b = list(csv.DictReader(handle))
    assert a["pixel_size_um"] == "0.5" and a["median_area_um2"] == "5"
    assert b["pixel_size_um"] == b["median_area_um2"] == "" and b["median_area_px"] == "20"


def test_pixel_size_auto_reads_each_tiff_and_a_number_overrides_it(tmp_path):
    image = np.zeros((20, 30), np.uint8)
    tifffile.imwrite(tmp_path / "imagej.tif", image, imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                     metadata={"unit": "\\u00B5m"})
    tifffile.imwrite(tmp_path / "plain.tif", image)
    assert pixel_size_for("auto", tmp_path / "imagej.tif") == 0.325
    assert pixel_size_for("auto", tmp_path / "plain.tif") is None
    assert pixel_size_for(0.1, tmp_path / "imagej.tif") == 0.1
    assert pixel_size_for(None, tmp_path / "imagej.tif") is None
