"""Synthetic scene sequences with a known shift per date, and their pairs, for the timelapse tests.

The ground is an analytic smooth pattern f(x, y) of reference pixels; the scene of date k shows the
ground point of reference pixel (x, y) at (x + dx_k(x), y + dy_k(y)) with the ramp
dx_k = A_k + 0.4 x/(W-1), dy_k = B_k - 0.3 y/(H-1) px, so remapping it with that ramp gives back f.
"""
import datetime as dt
import os

import numpy as np
import rasterio
from rasterio.transform import from_origin

SHAPE = (96, 128)
TRANSFORM = from_origin(500000, 4000000, 3, 3)
CRS = "EPSG:32618"
WHEN = [dt.datetime(2021, 3, 1, 15, 10, 5) + dt.timedelta(days=37 * k) for k in range(6)]
SHIFTS = [(0.0, 0.0), (1.5, -0.8), (-2.2, 1.1), (0.7, 2.4), (3.1, -1.9), (-1.3, -2.6)]
TILT_X, TILT_Y = 0.4, -0.3


def ground(x, y):
    """The pattern at reference pixel (x, y), reflectance-like counts."""
    return (1000 + 300 * np.sin(2 * np.pi * x / 23.0) * np.cos(2 * np.pi * y / 31.0)
            + 200 * np.sin(2 * np.pi * (x + y) / 47.0))


def ramp(k, x, y):
    """(dx, dy) of date k at reference pixel (x, y), px."""
    a, b = SHIFTS[k]
    if k == 0:
        return np.zeros_like(x), np.zeros_like(y)
    return a + TILT_X * x / (SHAPE[1] - 1), b + TILT_Y * y / (SHAPE[0] - 1)


def scene_image(k):
    """Date k as seen: f at the inverse of the ramp (exact to about 0.01 px)."""
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(np.float64)
    dx, dy = ramp(k, cols, rows)
    return ground(cols - dx, rows - dy)


def scene_name(k, band="b3"):
    return f"{WHEN[k]:%Y%m%d_%H%M%S}_{k:02d}_24a{k}_3B_{band}.tif"


def write(path, bands, transform=TRANSFORM, dtype="float32", nodata=float("nan"), descriptions=None, tags=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bands = np.asarray(bands)
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                       dtype=dtype, crs=CRS, transform=transform, nodata=nodata) as ds:
        ds.write(bands.astype(dtype))
        for index, text in enumerate(descriptions or (), start=1):
            ds.set_band_description(index, text)
        if tags:
            ds.update_tags(**tags)
    return path


def write_scenes(folder, order=(3, 0, 5, 1, 4, 2), count=len(WHEN)):
    """Scene files of dates 0..count-1 in a shuffled ``order``; returns the paths in that order."""
    return [write(os.path.join(folder, scene_name(k)), scene_image(k)[None]) for k in order if k < count]


def write_pairs(folder, count=len(WHEN), step=4, noise=0.02, seed=1):
    """Disparity rasters (reference = date 0, secondary k) holding the ramp of each date at the cell
    centres of a ``step``-pixel grid, plus noise; returns their paths."""
    from core.offsets.disparity import BASE_DESCRIPTIONS, disparity_tags
    from core.offsets.planetscope import iso_utc

    rng = np.random.default_rng(seed)
    rows, cols = SHAPE[0] // step, SHAPE[1] // step
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    ref_cols, ref_rows = jj * step + (step - 1) / 2.0, ii * step + (step - 1) / 2.0
    transform = TRANSFORM * TRANSFORM.scale(step)
    paths = []
    for k in range(1, count):
        dx, dy = ramp(k, ref_cols, ref_rows)
        bands = np.stack([dx + rng.normal(0, noise, dx.shape), dy + rng.normal(0, noise, dy.shape),
                          np.ones(dx.shape), np.full(dx.shape, 0.9)])
        tags = disparity_tags(step=step, ref_date=iso_utc(WHEN[0]), sec_date=iso_utc(WHEN[k]))
        name = f"{scene_name(0)[:23]}_{scene_name(k)[:23]}_disp.tif"
        paths.append(write(os.path.join(folder, name), bands, transform=transform, descriptions=BASE_DESCRIPTIONS,
                           tags=tags))
    return paths


def polyfit_pairs(folder, disparities):
    """The pairs de-ramped by polyfit (order 1): the outputs that carry the fitted ramp."""
    from core.offsets.polyfit import deramp_file

    outputs = []
    for path in disparities:
        out = os.path.join(folder, os.path.basename(path).replace("_disp.tif", "_polyfit.tif"))
        deramp_file(path, out, order=1, percentile_low=0.0, percentile_high=100.0)
        outputs.append(out)
    return outputs


def gif_frames(path):
    """The decoded GIF frames as (n, rows, cols, 3) uint8 and their durations (ms)."""
    from PIL import Image

    frames, durations = [], []
    with Image.open(path) as gif:
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
            durations.append(gif.info.get("duration"))
    return np.stack(frames), durations
