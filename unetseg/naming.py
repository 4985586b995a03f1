"""Pair masks with images by file name: the same stem, or the stem with one fixed text added, dropped
or changed at its start or end (`a.jpg` ↔ `a_segmentation.png`, `21_training.tif` ↔ `21_manual1.gif`,
`t01.tif` ↔ `man_seg01.tif`). Names only: what the files hold is `dataset`'s concern."""

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from unetseg.errors import UserError

CANDIDATES = 4  # added/dropped texts tried, the most frequent first


@dataclass(frozen=True)
class NameRule:
    """The image stem `image_prefix + core + image_suffix` pairs with the mask stem
    `mask_prefix + core + mask_suffix`."""
    image_prefix: str = ""
    image_suffix: str = ""
    mask_prefix: str = ""
    mask_suffix: str = ""

    def mask_for(self, image: str) -> str | None:
        core = _core(image, self.image_prefix, self.image_suffix)
        return None if core is None else self.mask_prefix + core + self.mask_suffix

    def image_for(self, mask: str) -> str | None:
        core = _core(mask, self.mask_prefix, self.mask_suffix)
        return None if core is None else self.image_prefix + core + self.image_suffix

    def pairs(self, images, masks) -> dict[str, str]:
        """Mask stem by image stem, for the images whose mask is there."""
        found = {image: self.mask_for(image) for image in images}
        return {image: mask for image, mask in found.items() if mask in masks}

    def describe(self) -> str:
        if self == NameRule():
            return "same name"
        return f"'{self.image_prefix}*{self.image_suffix}' ↔ '{self.mask_prefix}*{self.mask_suffix}'"


def _core(stem: str, prefix: str, suffix: str) -> str | None:
    if len(stem) < len(prefix) + len(suffix) or not (stem.startswith(prefix) and stem.endswith(suffix)):
        return None
    return stem[len(prefix):len(stem) - len(suffix)]


def added_texts(longer, shorter) -> Counter:
    """How often a name in `longer` is a name in `shorter` plus a text: Counter of (prefix, suffix)."""
    votes = Counter()
    for name in longer:
        for cut in range(1, len(name)):
            if name[:cut] in shorter:
                votes["", name[cut:]] += 1
            if name[cut:] in shorter:
                votes[name[:cut], ""] += 1
    return votes


def affix_rule(images, masks) -> NameRule:
    """Each folder's names with their common start and end cut off are the cores; what the two folders
    share next to the core belongs to it (so that 'ISIC_00…' is no part of the rule)."""
    (image_prefix, image_suffix), (mask_prefix, mask_suffix) = _affixes(images), _affixes(masks)
    shared_end = len(os.path.commonprefix([image_prefix[::-1], mask_prefix[::-1]]))
    shared_start = len(os.path.commonprefix([image_suffix, mask_suffix]))
    return NameRule(image_prefix[:len(image_prefix) - shared_end], image_suffix[shared_start:],
                    mask_prefix[:len(mask_prefix) - shared_end], mask_suffix[shared_start:])


def _affixes(names) -> tuple[str, str]:
    prefix = os.path.commonprefix(list(names))
    rests = [name[len(prefix):][::-1] for name in names]
    return prefix, os.path.commonprefix(rests)[::-1]


def best_rule(images, masks) -> NameRule:
    """The rule that pairs the most images: the same name first, then a text added to the image's
    name or to the mask's (the most frequent first), then each folder's common start and end changed."""
    added = (added_texts(masks, images).most_common(CANDIDATES), added_texts(images, masks).most_common(CANDIDATES))
    candidates = [NameRule(), *(NameRule(mask_prefix=p, mask_suffix=s) for (p, s), _ in added[0]),
                  *(NameRule(image_prefix=p, image_suffix=s) for (p, s), _ in added[1]), affix_rule(images, masks)]
    return max(candidates, key=lambda rule: len(rule.pairs(images, masks)))


@dataclass(frozen=True)
class Pairing:
    """What pair_by_name found: the rule, the mask stem of each paired image stem, and the files left
    without a partner (none unless they were allowed)."""
    rule: NameRule
    mask_of: dict[str, str]
    lone_images: tuple[Path, ...] = ()
    lone_masks: tuple[Path, ...] = ()


def pair_by_name(images: dict[str, Path], masks: dict[str, Path], images_dir, masks_dir,
                 skip_unpaired: bool = False) -> Pairing:
    """Pair the masks with the images by the rule that pairs the most. Every image needs its mask and
    every mask its image, unless `skip_unpaired` (prepare.unpaired: skip) leaves the others out."""
    rule = best_rule(images, masks)
    paired = rule.pairs(images, masks)
    if not paired:
        raise UserError(f"{masks_dir}: no mask is named after an image in {images_dir} (e.g. "
                        f"'{next(iter(masks.values())).name}' and '{next(iter(images.values())).name}'); name each "
                        "mask as its image ('a.png' and 'a.png'), or as its image with one fixed text added or "
                        "changed at the start or end ('a.png' and 'a_mask.png')")
    paired_masks = set(paired.values())
    pairing = Pairing(rule, paired, tuple(path for stem, path in images.items() if stem not in paired),
                      tuple(path for stem, path in masks.items() if stem not in paired_masks))
    if not skip_unpaired:
        _refuse_unpaired(pairing, images, masks, images_dir, masks_dir)
    return pairing


def _refuse_unpaired(pairing: Pairing, images, masks, images_dir, masks_dir) -> None:
    rule, (image, mask) = pairing.rule, next(iter(pairing.mask_of.items()))
    like = "" if rule == NameRule() else f" (as '{images[image].name}' and '{masks[mask].name}')"
    if pairing.lone_images:
        _refuse(pairing.lone_images, len(images), rule.mask_for, ("no mask", "named after it"),
                f" in {masks_dir}{like}; add it, remove the image", "images")
    if pairing.lone_masks:
        _refuse(pairing.lone_masks, len(masks), rule.image_for, ("mask without an image", "it is named after"),
                f" in {images_dir}{like}; add the image, remove the mask", "masks")


def _refuse(lone, total: int, partner_of, missing: tuple[str, str], fix: str, kind: str):
    """The error for the first of the `lone` files: the partner it lacks, named as the rule expects."""
    expected = partner_of(Path(lone[0]).stem)
    named = f"named '{expected}.*'" if expected is not None else missing[1]
    raise UserError(f"{lone[0]}: {missing[0]} {named}{fix}, or set prepare.unpaired: skip to leave out the "
                    f"{len(lone)} of {total} {kind} without one")


def split_shared_folder(files: dict[str, Path], folder) -> tuple[dict[str, Path], dict[str, Path]]:
    """(images, masks) of one folder holding both: the masks are the files named as another file plus
    the text that most names add ('a.png' and 'a_mask.png')."""
    votes = added_texts(files, files)
    if not votes:
        raise UserError(f"{folder}: data.images and data.masks are this one folder, but no file in it is named as "
                        "another plus a fixed text ('a.png' and 'a_mask.png') to tell the masks; name them so, or "
                        "put the masks in a folder of their own")
    (prefix, suffix), _ = votes.most_common(1)[0]
    masks = {stem: path for stem, path in files.items() if _core(stem, prefix, suffix) in files}
    return {stem: path for stem, path in files.items() if stem not in masks}, masks
