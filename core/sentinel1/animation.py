"""Animated GIF of a dual-polarisation time series with the dates burnt in (REFERENCE §9.6).

Per date: R = co-pol dB stretched −20…0, G = cross-pol dB −25…−5, B = co − cross
(dB ratio) 1…15, each linearly to 0…255 and clipped; no data is black. With only one
stack the frame is its dB stretched −25…0 in grey. Reads are decimated (average) so
the longer side has at most ``max_size`` pixels.
"""
from __future__ import annotations

import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from rasterio.enums import Resampling

from ..errors import UserInputError, check_canceled
from ..io import atomic_file, open_raster, verify
from .stack import Layer, collect_layers, require_plausible_unit, require_same_grid, require_stack
from .units import power_to_db

CO_RANGE = (-20.0, 0.0)
CROSS_RANGE = (-25.0, -5.0)
RATIO_RANGE = (1.0, 15.0)
SINGLE_RANGE = (-25.0, 0.0)


def stretch(values: np.ndarray, value_range: Tuple[float, float]) -> np.ndarray:
    """Linear stretch of ``value_range`` to 0…255 (uint8, clipped; NaN -> 0)."""
    lo, hi = value_range
    scaled = np.clip((values - lo) / (hi - lo) * 255.0, 0, 255)
    return np.where(np.isfinite(scaled), np.rint(scaled), 0).astype(np.uint8)


def read_db_decimated(layer: Layer, unit: str, shape: Tuple[int, int]) -> np.ndarray:
    """One date in dB, averaged (in linear power) down to ``shape``; NaN = no data."""
    with open_raster(layer.path) as ds:
        raw = ds.read(layer.band, out_shape=shape, resampling=Resampling.average, masked=True)
        scale = ds.scales[layer.band - 1] or 1.0
        offset = ds.offsets[layer.band - 1] or 0.0
        integer = np.issubdtype(raw.dtype, np.integer)
    values = raw.astype(np.float32).filled(np.nan) * np.float32(scale) + np.float32(offset)
    if integer:
        values[raw.filled(0) == 0] = np.nan
    if unit == "linear":
        values[values == 0] = np.nan
        return power_to_db(values)
    return values


def frame_rgb(co_db: np.ndarray, cross_db: Optional[np.ndarray]) -> np.ndarray:
    """(rows, cols, 3) uint8 frame; see the module docstring for the stretches."""
    if cross_db is None:
        grey = stretch(co_db, SINGLE_RANGE)
        return np.dstack([grey, grey, grey])
    rgb = np.dstack([stretch(co_db, CO_RANGE), stretch(cross_db, CROSS_RANGE), stretch(co_db - cross_db, RATIO_RANGE)])
    rgb[~(np.isfinite(co_db) & np.isfinite(cross_db))] = 0
    return rgb


def stored_frames(frames: Sequence) -> int:
    """Frames a GIF of ``frames`` holds: PIL stores identical consecutive frames once (their
    durations add up), e.g. dates with the same image when dates are not burnt in."""
    pixels = [frame.convert("RGB").tobytes() for frame in frames]
    return 1 + sum(1 for before, after in zip(pixels, pixels[1:]) if before != after)


def burn_label(image, text: str, scale: int = 1) -> Tuple[int, int, int, int]:
    """Write ``text`` white on a black box at the top left of the RGB ``image`` (in place).

    PIL's built-in bitmap font is drawn ``scale`` times larger (nearest neighbour) so the
    label stays readable on big frames without a font file. Returns the box (x0, y0, x1, y1).
    """
    from PIL import Image, ImageDraw

    scale = max(1, int(scale))
    probe = ImageDraw.Draw(image)
    left, top, right, bottom = probe.textbbox((0, 0), text)
    label = Image.new("RGB", (right + 6, bottom + 6), (0, 0, 0))
    ImageDraw.Draw(label).text((3, 3), text, fill=(255, 255, 255))
    if scale > 1:
        label = label.resize((label.width * scale, label.height * scale), Image.NEAREST)
    margin = 1 + scale
    image.paste(label, (margin, margin))
    return margin, margin, margin + label.width, margin + label.height


def palette_frame(image):
    """The 256-colour palette image a GIF frame stores (median cut, no dithering)."""
    from PIL import Image

    return image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def write_gif(frames: Sequence, path: str, frame_ms: int) -> None:
    """Write the palette ``frames`` as a looping GIF (``frame_ms`` ms each) under a temporary name,
    decode every frame back and only then rename it to ``path``."""
    with atomic_file(path, verify=verify.image_readable(stored_frames(frames))) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)


def match_dates(co: Sequence[Layer], cross: Sequence[Layer]) -> List[Tuple[Layer, Layer]]:
    """Pairs of co- and cross-pol layers acquired on the same UTC day."""
    by_day = {layer.when.date(): layer for layer in cross}
    pairs = [(layer, by_day[layer.when.date()]) for layer in co if layer.when.date() in by_day]
    if not pairs:
        raise UserInputError("The co- and cross-polarised stacks have no acquisition day in common.")
    return pairs


def make_animation(co_inputs: Sequence[str], output_gif: str, cross_inputs: Sequence[str] = (), unit: str = "db",
                   max_size: int = 800, frame_ms: int = 700, show_dates: bool = True,
                   progress: Optional[Callable[[float], None]] = None,
                   is_canceled: Optional[Callable[[], bool]] = None) -> dict:
    """Write an animated GIF (one frame per date, looping) and return its path and dates.

    The GIF is written under a temporary name, decoded back (every frame) and only then
    renamed; stacks with no valid pixel at any date are refused.
    """
    from PIL import Image

    if not output_gif.lower().endswith(".gif"):
        raise UserInputError(f"The animation file must end with .gif (got '{os.path.basename(output_gif)}').")
    co = collect_layers(co_inputs)
    require_stack(co)
    grid = require_same_grid(co)
    require_plausible_unit(co, unit)
    if cross_inputs:
        cross = collect_layers(cross_inputs)
        require_stack(cross)
        if require_same_grid(cross) != grid:
            raise UserInputError("The co- and cross-polarised stacks are not on the same grid; build both with "
                                 "one run of surfacemotion:s1timeseries.")
        require_plausible_unit(cross, unit)
        pairs = match_dates(co, cross)
    else:
        pairs = [(layer, None) for layer in co]
    factor = max(1.0, max(grid.width, grid.height) / float(max_size))
    shape = (max(1, int(round(grid.height / factor))), max(1, int(round(grid.width / factor))))
    frames = []
    any_valid = False
    for index, (co_layer, cross_layer) in enumerate(pairs, start=1):
        check_canceled(is_canceled)
        co_db = read_db_decimated(co_layer, unit, shape)
        cross_db = read_db_decimated(cross_layer, unit, shape) if cross_layer is not None else None
        any_valid |= bool(np.isfinite(co_db).any())
        image = Image.fromarray(frame_rgb(co_db, cross_db), "RGB")
        if show_dates:
            burn_label(image, co_layer.when.strftime("%Y-%m-%d"))
        frames.append(palette_frame(image))
        if progress:
            progress(90.0 * index / len(pairs))
    if not any_valid:
        raise UserInputError("The co-polarised stack has no valid pixel at any date (every value is nodata): "
                             "check the stack and its unit. Nothing was written.")
    write_gif(frames, output_gif, frame_ms)
    if progress:
        progress(100.0)
    return {"path": output_gif, "dates": [p[0].when.strftime("%Y-%m-%d") for p in pairs], "size": shape}
