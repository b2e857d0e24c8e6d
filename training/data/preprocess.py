"""Per-image preprocessing of the authors' `dataset_tool.py`, kept identical so FIDs stay comparable with the paper's.

Pipeline for one image (all sizes in pixels, W = width, H = height):
    1. convert to 8-bit RGB (grayscale, palette, RGBA/LA, CMYK, 16-bit and float modes handled);
    2. crop the largest centred rectangle of aspect height/width = ratio: s = min(W, H / ratio),
       width s, height ratio * s;
    3. pad to a centred black square of side max(W, H);
    4. Lanczos-resize to 2^round(log2(side)) (or to an explicitly requested resolution).
The result is an RGB uint8 array `[R, R, 3]` (HWC).

Two additions that are no-ops for the paper's datasets: the EXIF orientation tag is applied first
(phone photos otherwise come out rotated) and transparent pixels are composited onto black (PIL's
plain RGB conversion would expose whatever colour hides under alpha = 0).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageOps

MIN_RESOLUTION = 4


def is_power_of_two(value: int) -> bool:
    """Whether `value` is a positive power of two."""
    return value > 0 and (value & (value - 1)) == 0


def _scale_high_bit_depth(img: Image.Image) -> Image.Image:
    """Maps 16/32-bit integer and float grayscale images to 8-bit grayscale ("L").

    Integer images whose maximum exceeds 255 are treated as 16-bit (divided by 257); float images
    with values in [0, 1] are scaled by 255. PIL's own conversion would clip these to white.
    """
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        peak = float(np.nanmax(arr)) if arr.size else 0.0
        arr = np.nan_to_num(arr.astype(np.float64))
        if peak <= 1.0:
            arr = arr * 255.0
    else:
        arr = arr.astype(np.float64)
        if arr.size and arr.max() > 255:
            arr = arr / 257.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts any PIL image to 8-bit RGB (step 1 of the pipeline above).

    Args:
        img: a PIL image of any mode (1, L, P, RGB, RGBA, LA, CMYK, YCbCr, I, I;16, F, ...).

    Returns:
        An RGB image of the same size.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _scale_high_bit_depth(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def crop_max_rectangle(img: Image.Image, ratio: float) -> Image.Image:
    """Crops the largest centred rectangle with height / width == ratio (step 2 of the pipeline above; the authors'
    `crop_max_rectangle`).

    Args:
        img: PIL image of size (W, H).
        ratio: content aspect height / width in (0, 1].

    Returns:
        The cropped image of width round(s) and height round(ratio * s), s = min(W, H / ratio).
    """
    width, height = img.size
    side = min(width, height / ratio)
    crop_w = max(1, int(round(side)))
    crop_h = max(1, int(round(ratio * side)))
    left = (width - crop_w) // 2
    top = (height - crop_h) // 2
    if (left, top, crop_w, crop_h) == (0, 0, width, height):
        return img
    return img.crop((left, top, left + crop_w, top + crop_h))


def pad_min_square(img: Image.Image) -> Image.Image:
    """Pastes the image centred on a black square of side max(W, H) (step 3 of the pipeline above; the authors'
    `pad_min_square`)."""
    width, height = img.size
    side = max(width, height)
    if width == height:
        return img
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(img, ((side - width) // 2, (side - height) // 2))
    return canvas


def natural_resolution(width: int, height: int, ratio: float) -> int:
    """The resolution an image of this size ends at without `--resolution` (step 4 of the pipeline above).

    Args:
        width: image width in pixels.
        height: image height in pixels.
        ratio: content aspect height / width in (0, 1].

    Returns:
        2^round(log2(side)) where side is the padded square's side after the ratio crop.
    """
    side = min(width, height / ratio)
    crop_w = max(1, int(round(side)))
    crop_h = max(1, int(round(ratio * side)))
    square = max(crop_w, crop_h)
    return 2 ** int(round(math.log2(square)))


def preprocess_image(img: Image.Image, ratio: float, resolution: int | None = None) -> np.ndarray:
    """Applies the whole pipeline above to one image.

    Args:
        img: a PIL image of any mode and size.
        ratio: content aspect height / width in (0, 1].
        resolution: target side (power of two); None = the image's natural resolution.

    Returns:
        uint8 array `[R, R, 3]`.
    """
    rgb = to_rgb(img)
    square = pad_min_square(crop_max_rectangle(rgb, ratio))
    target = resolution if resolution is not None else natural_resolution(rgb.width, rgb.height, ratio)
    if square.size != (target, target):
        square = square.resize((target, target), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def array_to_image(arr: np.ndarray) -> Image.Image:
    """Turns one decoded array image into a PIL image for `preprocess_image`.

    Args:
        arr: `[H, W]`, `[H, W, C]` or `[C, H, W]` with C in {1, 3, 4}; uint8, uint16 or float.

    Returns:
        A PIL image ("L", "RGB" or "RGBA"; high bit depths scaled to 8 bits).

    Raises:
        ValueError: if the array does not look like an image, is not numeric or holds NaN/inf values.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"array of shape {tuple(arr.shape)} is not an image ([H,W], [H,W,C] or [C,H,W])")
    if arr.dtype.kind not in "uif":
        raise ValueError(f"dtype {arr.dtype} is not pixel data (expected integers or floats)")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("holds NaN or infinite values")
    if arr.dtype != np.uint8:
        data = arr.astype(np.float64)
        if arr.dtype.kind == "f" and data.size and data.max() <= 1.0:
            data = data * 255.0
        elif data.size and data.max() > 255:
            data = data / 257.0
        arr = np.clip(np.rint(data), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))  # uint8 [H,W] -> L, [H,W,3] -> RGB, [H,W,4] -> RGBA
