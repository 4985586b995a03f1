import csv

import numpy as np
import pytest

from unetseg.measure import SHAPE_COLUMNS, intensity_columns, object_measurements, write_measurements


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
