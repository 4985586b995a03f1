import numpy as np
import pytest

from unetseg.errors import UserError
from unetseg.shards import ShardWriter, iter_shards, patch_files, patch_sources, read_manifest


def patches(n, start=0):
    images = np.arange(start, start + n, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 4, 2), np.float32)
    masks = (np.arange(start, start + n)[:, None, None] % 2 * np.ones((1, 4, 4))).astype(np.uint8)
    return images, masks


def test_writer_splits_into_shards_and_keeps_order(tmp_path):
    writer = ShardWriter(tmp_path, patch_size=4, channels=2, shard_size=3)
    for source, start in enumerate((0, 2, 7)):
        writer.add(*patches(2 if start < 7 else 4, start), source=source // 2)
    manifest = writer.close(note="x")
    assert manifest["sources"] == [[0, 4], [1, 4]]  # runs of one image merge, even across shards
    assert patch_sources(manifest).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert manifest == read_manifest(tmp_path)
    assert manifest["count"] == 8 and [s["count"] for s in manifest["shards"]] == [3, 3, 2]
    assert manifest["note"] == "x" and manifest["image_dtype"] == "float32"
    firsts = np.concatenate([images[:, 0, 0, 0] for images, _ in iter_shards(tmp_path)])
    assert firsts.tolist() == [0, 1, 2, 3, 7, 8, 9, 10]


def test_foreground_fraction_and_memory_maps(tmp_path):
    writer = ShardWriter(tmp_path, 4, 2, 10)
    writer.add(*patches(4), source=0)
    assert writer.close()["foreground_fraction"] == 0.5
    images, masks = next(iter_shards(tmp_path))
    assert isinstance(images, np.memmap) and masks.dtype == np.uint8


def test_images_are_stored_in_the_image_dtype_saturated_at_its_range(tmp_path, monkeypatch):
    from unetseg import shards

    monkeypatch.setattr(shards, "IMAGE_DTYPE", np.float16)  # measured as an option (benchmarks/augment_speed.py)
    writer = ShardWriter(tmp_path, 2, 1, 4)
    images = np.array([0.1234567, -3.5, 1e6, -np.inf], np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1))
    writer.add(images.astype(np.float32), np.zeros((4, 2, 2), np.uint8), source=0)
    assert writer.close()["image_dtype"] == "float16"
    stored, _ = next(iter_shards(tmp_path))
    assert stored.dtype == np.float16 and np.isfinite(stored).all()
    assert stored[:, 0, 0, 0].tolist() == [np.float16(0.1234567), -3.5, 65504.0, -65504.0]


def test_empty_writer_gives_an_empty_manifest(tmp_path):
    manifest = ShardWriter(tmp_path, 4, 1, 5).close()
    assert manifest["count"] == 0 and manifest["shards"] == [] and list(iter_shards(tmp_path)) == []
    assert manifest["sources"] == [] and patch_sources(manifest).tolist() == []


def test_a_missing_manifest_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match=r"manifest\.json: not found; run the stage that writes it first"):
        read_manifest(tmp_path / "nowhere")


def test_patch_files_read_any_patches_in_any_order(tmp_path):
    writer = ShardWriter(tmp_path, 4, 2, shard_size=3)
    images, masks = patches(7)
    writer.add(images, masks, source=0)
    writer.close()
    files = patch_files(tmp_path)
    assert [len(image_file) for image_file, _ in files] == [3, 3, 1]
    np.testing.assert_array_equal(files[1][0].read([2, 0, 2]), images[[5, 3, 5]])
    np.testing.assert_array_equal(files[2][1].read([0]), masks[[6]])
