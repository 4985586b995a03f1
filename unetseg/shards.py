"""Patch storage between stages: a few large uncompressed .npy shards plus a JSON manifest.

A directory holds `images-00000.npy` (N, P, P, C) float32, `masks-00000.npy` (N, P, P) uint8, for
the weighted target `weights-00000.npy` (N, P, P) float16 (the loss weight of each mask pixel), and
`manifest.json`. Shards are memory-mappable, so readers never need the whole set in memory. The
manifest's `sources` says which image each patch came from, as runs [image index, patch count] in
patch order, so a reader can weigh images rather than patches.
"""

import json
import os
from pathlib import Path

import numpy as np

from unetseg.errors import UserError

MANIFEST = "manifest.json"
KINDS = ("images", "masks", "weights")  # the files of a shard, in the order readers hand them out
# float16 would halve the bytes to write, hash, cache and read (DSB2018's augmented patches: 12.9 -> 6.9 GB),
# but the shipped data's object AP@0.5 fell with it on both seeds measured (README, "Shards in float16")
IMAGE_DTYPE = np.float32


class ShardWriter:
    """Buffers patches and writes them out shard by shard; memory is bounded by `shard_size`."""

    def __init__(self, directory, patch_size: int, channels: int, shard_size: int, weights: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.patch_size, self.channels, self.shard_size = patch_size, channels, shard_size
        self.weighted = weights
        self.shards: list[dict] = []
        self.count = 0
        self.foreground = 0
        self.sources: list[list[int]] = []
        self._reset_buffer()

    def _reset_buffer(self):
        size = self.patch_size
        self._images = np.empty((self.shard_size, size, size, self.channels), IMAGE_DTYPE)
        self._masks = np.empty((self.shard_size, size, size), np.uint8)
        self._weights = np.empty((self.shard_size, size, size), np.float16) if self.weighted else None
        self._filled = 0

    def add(self, images: np.ndarray, masks: np.ndarray, source: int, weights: np.ndarray | None = None) -> None:
        """Append a batch cut from image number `source`: images (n, P, P, C) float, masks (n, P, P)
        integer class ids, and for a writer of weights their (n, P, P) loss weights."""
        if self.weighted != (weights is not None):
            raise ValueError("weights go with a ShardWriter(weights=True), and only there")
        images = saturated(images.reshape(len(images), self.patch_size, self.patch_size, self.channels),
                           self._images.dtype)
        if self.sources and self.sources[-1][0] == source:
            self.sources[-1][1] += len(images)
        elif len(images):
            self.sources.append([int(source), len(images)])
        start = 0
        while start < len(images):
            n = min(self.shard_size - self._filled, len(images) - start)
            self._images[self._filled:self._filled + n] = images[start:start + n]
            self._masks[self._filled:self._filled + n] = masks[start:start + n]
            if self.weighted:
                self._weights[self._filled:self._filled + n] = weights[start:start + n]
            self._filled += n
            start += n
            if self._filled == self.shard_size:
                self._flush()

    def _flush(self):
        if not self._filled:
            return
        index = len(self.shards)
        names = {"images": f"images-{index:05d}.npy", "masks": f"masks-{index:05d}.npy"}
        np.save(self.directory / names["images"], self._images[: self._filled])
        np.save(self.directory / names["masks"], self._masks[: self._filled])
        if self.weighted:
            names["weights"] = f"weights-{index:05d}.npy"
            np.save(self.directory / names["weights"], self._weights[: self._filled])
        self.shards.append({**names, "count": self._filled})
        self.count += self._filled
        self.foreground += int(np.count_nonzero(self._masks[: self._filled]))
        self._filled = 0

    def close(self, **extra) -> dict:
        """Flush the last shard and write the manifest (plus any `extra` fields); return it."""
        self._flush()
        pixels = self.count * self.patch_size**2
        manifest = {
            "count": self.count,
            "patch_size": self.patch_size,
            "channels": self.channels,
            "image_dtype": np.dtype(IMAGE_DTYPE).name,
            "mask_dtype": "uint8",
            "foreground_fraction": self.foreground / pixels if pixels else 0.0,
            "shards": self.shards,
            "sources": self.sources,
            **({"weights": True} if self.weighted else {}),
            **extra,
        }
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return manifest


def saturated(values: np.ndarray, dtype) -> np.ndarray:
    """`values`, clipped to the finite range of the float `dtype` where that is narrower than theirs
    (so a float16 shard stores no inf); as they are where it is not."""
    if np.dtype(dtype).itemsize >= values.dtype.itemsize:
        return values
    limit = float(np.finfo(dtype).max)
    return np.clip(values, -limit, limit)


def read_manifest(directory) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path}: not found; run the stage that writes it first (dvc repro)")
    return json.loads(path.read_text())


def patch_sources(manifest: dict) -> np.ndarray:
    """The source image number of every patch, in patch order."""
    runs = np.array(manifest["sources"], np.int64).reshape(-1, 2)
    return np.repeat(runs[:, 0], runs[:, 1])


def iter_shards(directory, mmap: bool = True):
    """Yield (images, masks) per shard, or (images, masks, weights) where the shards hold weights;
    memory-mapped by default."""
    for shard in read_manifest(directory)["shards"]:
        yield load_shard(directory, shard, mmap)


def load_shard(directory, shard: dict, mmap: bool = True) -> tuple[np.ndarray, ...]:
    """The arrays of `shard` (an entry of the manifest's `shards`), as `iter_shards` gives them."""
    mode = "r" if mmap else None
    return tuple(np.load(Path(directory) / shard[kind], mmap_mode=mode) for kind in KINDS if kind in shard)


class PatchFile:
    """Random access to the patches of one .npy shard by plain reads, not a memory map.

    Pages that a memory map touched stay in the process's resident memory until the kernel needs
    them back; reading only the requested patches keeps the reader's memory flat however many
    patches an epoch visits.
    """

    def __init__(self, path):
        header = np.load(path, mmap_mode="r")  # maps the file, but reads only its header
        self.shape, self.dtype, self.offset = header.shape, header.dtype, header.offset
        del header
        self.patch_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.path = Path(path)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, indices) -> np.ndarray:
        """The patches at `indices`, stacked in that order."""
        out = np.empty((len(indices), *self.shape[1:]), self.dtype)
        self.read_into(out, range(len(indices)), indices)
        return out

    def read_into(self, out: np.ndarray, rows, indices, flips=None) -> None:
        """Copy patch indices[i] into out[rows[i]]; flips[i] = (rows, columns) reverses those axes of
        the patch in the same copy (a flip then costs no extra pass over the batch)."""
        with open(self.path, "rb") as file:
            for i, (row, index) in enumerate(zip(rows, indices)):
                data = os.pread(file.fileno(), self.patch_bytes, self.offset + int(index) * self.patch_bytes)
                patch = np.frombuffer(data, self.dtype).reshape(self.shape[1:])
                if flips is not None:
                    patch = patch[::-1 if flips[i][0] else 1, ::-1 if flips[i][1] else 1]
                out[row] = patch


def patch_files(directory) -> list[tuple[PatchFile, ...]]:
    """(images, masks) readers per shard, in manifest order; (images, masks, weights) with weights."""
    directory = Path(directory)
    return [tuple(PatchFile(directory / shard[kind]) for kind in KINDS if kind in shard)
            for shard in read_manifest(directory)["shards"]]
