"""Inference on whole images of any size: in one model call when the image fits, else overlap-tile as
in the U-Net paper.

Either way the image is mirror-padded first, so that its borders see context as its centre does.
An image that fits in `max_whole_pixels` goes through the model whole: one call, no tile seams.
A larger image is cut into overlapping tiles, the tiles go through the model in batches, and the
outputs are blended with importance weights (Gaussian: tile centres count more than their borders).
Rows of tiles are processed as horizontal bands and written out as soon as no later tile touches
them, so memory grows with the image width, not its area.
"""

from typing import Callable

import numpy as np

from unetseg import portable
from unetseg.patches import reflect

PredictBatch = Callable[[np.ndarray], np.ndarray]  # (N, H, W, C) float32 -> (N, H, W, K)
View = Callable[[np.ndarray], np.ndarray]  # acts on the (H, W) axes of an (N, H, W, C) batch


def _rotation(turns: int) -> View:
    return lambda batch: np.rot90(batch, turns, axes=(1, 2))


def _mirror_then_rotation(turns: int) -> View:
    return lambda batch: np.rot90(batch[:, ::-1], turns, axes=(1, 2))


def _undo_mirror_then_rotation(turns: int) -> View:
    return lambda batch: np.rot90(batch, -turns, axes=(1, 2))[:, ::-1]


# Test-time augmentation: (view, its inverse) pairs; the model's outputs on all views are averaged.
TTA_VIEWS: dict[str, list[tuple[View, View]]] = {
    "none": [(_rotation(0), _rotation(0))],
    "flips": [(_rotation(0), _rotation(0)), (_mirror_then_rotation(0), _undo_mirror_then_rotation(0)),
              (_mirror_then_rotation(2), _undo_mirror_then_rotation(2))],  # the up-down and the left-right mirror
    "dihedral": [pair for turns in range(4)
                 for pair in ((_rotation(turns), _rotation(-turns)),
                              (_mirror_then_rotation(turns), _undo_mirror_then_rotation(turns)))],
}


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Tile offsets along one axis (of an axis already padded to >= tile): step = tile * (1 - overlap),
    spread evenly so the first and last tiles are flush with the ends."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    count = int(np.ceil((length - tile) / step)) + 1
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def gaussian_weights(tile: int, sigma_scale: float = 1 / 8, floor: float = 1e-3) -> np.ndarray:
    """(T, T) importance map, 1 at the centre, sigma = tile * sigma_scale, positive everywhere."""
    axis = np.arange(tile) - (tile - 1) / 2
    profile = portable.exp(-0.5 * (axis / (tile * sigma_scale)) ** 2)
    weights = np.outer(profile, profile)
    return np.maximum(weights / weights.max(), floor).astype(np.float32)


def blend_weights(tile: int, mode: str) -> np.ndarray:
    return gaussian_weights(tile) if mode == "gaussian" else np.ones((tile, tile), np.float32)


def padded_size(length: int, tile: int, context: int) -> int:
    """Context on both sides, and at least one tile."""
    return max(length + 2 * context, tile)


def mirror_pad(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The image at the source indices `rows` x `cols` (from padded_axis)."""
    return image[rows[:, None], cols[None, :]]


def predict_image(image: np.ndarray, predict_batch: PredictBatch, tile: int, overlap: float = 0.5,
                  blend: str = "gaussian", batch_size: int = 8, tta: str = "none", max_whole_pixels: int = 0,
                  multiple: int = 1, out=None) -> np.ndarray:
    """Blended model output (H, W, K) float32 for a whole (H, W, C) image.

    Every image and tile gets tile * overlap / 2 px of mirrored context. The image goes through the
    model whole, its padded sides rounded up to a `multiple` (the network's 2**depth), when that
    is at most `max_whole_pixels` pixels; else in tiles. `out` may be a preallocated (H, W, K)
    array (e.g. a memory map) to write into.
    """
    height, width = image.shape[:2]
    context = context_px(tile, overlap)
    run = _averaged_over_views(predict_batch, TTA_VIEWS[tta])
    whole = whole_image_shape(height, width, tile, overlap, multiple)
    if whole[0] * whole[1] <= max_whole_pixels:
        return _predict_whole(image, run, context, whole, out)
    rows, cols = padded_axis(height, tile, context), padded_axis(width, tile, context)
    weights = blend_weights(tile, blend)
    ys, xs = tile_starts(len(rows), tile, overlap), tile_starts(len(cols), tile, overlap)

    band_top, acc, norm = 0, None, None
    for i, y in enumerate(ys):
        band = mirror_pad(image, rows[y:y + tile], cols).astype(np.float32, copy=False)
        tiles_out = _predict_row(band, xs, tile, run, batch_size)
        if acc is None:
            acc = np.zeros((0, len(cols), tiles_out.shape[-1]), np.float32)
            norm = np.zeros((0, len(cols)), np.float32)
            if out is None:
                out = np.empty((height, width, tiles_out.shape[-1]), np.float32)
        grow = y + tile - (band_top + len(acc))
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((grow,) + acc.shape[1:], np.float32)])
            norm = np.concatenate([norm, np.zeros((grow, len(cols)), np.float32)])
        for x, tile_out in zip(xs, tiles_out):
            acc[y - band_top:y - band_top + tile, x:x + tile] += tile_out * weights[..., None]
            norm[y - band_top:y - band_top + tile, x:x + tile] += weights
        done = ys[i + 1] if i + 1 < len(ys) else band_top + len(acc)
        _write_rows(out, acc[: done - band_top] / norm[: done - band_top, :, None], band_top, context,
                    height, width)
        acc, norm, band_top = acc[done - band_top:], norm[done - band_top:], done
    return out


def context_px(tile: int, overlap: float) -> int:
    """The mirrored context every image and tile gets on each side: every pixel sees at least this much."""
    return int(tile * overlap / 2)


def whole_image_shape(height: int, width: int, tile: int, overlap: float, multiple: int) -> tuple[int, int]:
    """The size an image goes through the model at when whole: its context added, rounded up to `multiple`."""
    context = context_px(tile, overlap)
    return tuple(-(-(side + 2 * context) // multiple) * multiple for side in (height, width))


def padded_axis(length: int, tile: int, context: int) -> np.ndarray:
    """Source index of every position of a mirror-padded axis: `context` before the image, then the
    image, then enough after it for at least one tile and `context` of margin."""
    positions = np.arange(padded_size(length, tile, context)) - context
    return reflect(positions, length)


def _write_rows(out, rows, first: int, context: int, height: int, width: int) -> None:
    """Copy finished padded rows [first, first + len(rows)) into the unpadded output."""
    top, bottom = max(first, context), min(first + len(rows), context + height)
    if top < bottom:
        out[top - context:bottom - context] = rows[top - first:bottom - first, context:context + width]


def _predict_row(band: np.ndarray, xs: list[int], tile: int, run: PredictBatch, batch_size: int) -> np.ndarray:
    tiles = np.stack([band[:, x:x + tile] for x in xs])
    outputs = [np.asarray(run(tiles[i:i + batch_size]), np.float32) for i in range(0, len(tiles), batch_size)]
    return np.concatenate(outputs)


def _predict_whole(image: np.ndarray, run: PredictBatch, context: int, padded: tuple[int, int], out) -> np.ndarray:
    """One model call on the whole image, mirror-padded by `context` (and to the `padded` size)."""
    height, width = image.shape[:2]
    rows, cols = (reflect(np.arange(size) - context, length) for size, length in zip(padded, (height, width)))
    result = np.asarray(run(mirror_pad(image, rows, cols).astype(np.float32, copy=False)[None]))[0]
    if out is None:
        out = np.empty((height, width, result.shape[-1]), np.float32)
    out[...] = result[context:context + height, context:context + width]
    return out


def _averaged_over_views(predict_batch: PredictBatch, views: list[tuple[View, View]]) -> PredictBatch:
    """The model's output averaged over the views (the first is the batch itself), each mapped back;
    the model itself for one view."""
    if len(views) == 1:
        return predict_batch

    def run(batch):
        total = np.array(predict_batch(batch), np.float32)  # a copy: the output may be a view of the input
        for view, inverse in views[1:]:
            total += inverse(np.asarray(predict_batch(np.ascontiguousarray(view(batch))), np.float32))
        return total / len(views)
    return run
