"""Timelapse of a scene series: secondaries remapped onto the reference, an animated GIF (and MP4).

Scenes are single-band rasters (or one band of multi-band rasters) on one grid, dated by their
names: a PlanetScope scene id (core/offsets/planetscope.py) or any ``YYYYMMDD`` / ``YYYY-MM-DD``
in the name (UTC). The reference is the oldest scene; the others are secondaries.

Co-registration of a secondary (REFERENCE §6.1 point 8): the value shown at reference pixel
(x, y) is the secondary at (x + model_dx, y + model_dy), bilinear, with

* ``polyfit``: the ramp polyfit fitted to the pair's offsets, evaluated again from the
  coefficients polyfit stores in its output (tags SM_POLYFIT_COEF_DX/DY; offsets in reference
  pixels, dx + right, dy + down); the motion the ramp does not hold stays visible;
* ``median``: a constant shift, the median dx and dy of the pair's disparity map;
* ``none``: no shift.

The pair of a secondary is the disparity raster whose reference / secondary dates (tags
SM_REF_DATE / SM_SEC_DATE, else the two scene ids or dates in its name) are the reference's and
that secondary's acquisition days.

Frames are read averaged down so the longer side has at most ``max_size`` pixels (bounded
memory; the remap is done on the decimated frames with the full-resolution model), stretched
with one 2–98 % percentile range shared by all frames, shown grey (no data black), with the
date (YYYY-MM-DD, UTC) burnt in at the top left. An optional velocity raster (its speed band,
m/yr) is drawn over every frame semi-transparently with a blue–cyan–yellow–red colour ramp from
0 to ``velocity_max`` m/yr. The GIF is written with the Sentinel-1 animation's writer
(core/sentinel1/animation.py); an MP4 (H.264) is written too when ``ffmpeg`` is on PATH (or
the imageio-ffmpeg package is installed).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine

from ..choices import Choices
from ..errors import UserInputError, check_canceled
from ..io import Grid, atomic_file, band_index_by_description, open_raster, require_memory, resample_to_grid
from ..io.files import temporary_folder
from ..offsets.disparity import TAG_REF_DATE, TAG_SEC_DATE, describe_disparity, read_offsets
from ..offsets.planetscope import find_scene_ids, parse_iso_utc
from ..offsets.polyfit import TAG_POLYFIT_COEF_DX, TAG_POLYFIT_COEF_DY, TAG_POLYFIT_DEM, TAG_POLYFIT_ORDER, \
    evaluate_ramp
from ..sentinel1.animation import burn_label, palette_frame, stretch, write_gif

CORRECTIONS = Choices(("none", "none: frames as they are"),
                      ("polyfit", "polynomial fit of each pair (outputs of polyfit)"),
                      ("median", "constant shift: median offset of each pair's disparity map"))
#: Shared stretch of all frames (percent).
PERCENTILES = (2.0, 98.0)
#: Values sampled per frame for the shared percentiles (a regular lattice).
_SAMPLES_PER_FRAME = 200_000
#: Colour ramp of the velocity overlay: (fraction of velocity_max, RGB).
VELOCITY_RAMP = ((0.0, (43, 131, 186)), (0.33, (171, 221, 164)), (0.66, (253, 174, 97)), (1.0, (215, 25, 28)))
#: Frame memory: float16 frame + palette image + RGB work image per frame pixel (bytes).
_BYTES_PER_FRAME_PIXEL = 3
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


@dataclass(frozen=True)
class Scene:
    """One dated scene: ``when`` is its acquisition time (UTC)."""

    path: str
    when: datetime

    @property
    def day(self) -> str:
        return self.when.strftime("%Y-%m-%d")


def dates_in_name(path: str) -> List[datetime]:
    """Acquisition times in a file name, left to right: PlanetScope scene ids, else YYYYMMDD / YYYY-MM-DD."""
    ids = find_scene_ids(path)
    if ids:
        return [scene.acquired for scene in ids]
    found = []
    for year, month, day in _DATE_IN_NAME.findall(os.path.basename(path)):
        try:
            found.append(datetime(int(year), int(month), int(day), tzinfo=timezone.utc))
        except ValueError:
            continue
    return found


def collect_scenes(paths: Sequence[str], band: int) -> Tuple[List[Scene], Grid]:
    """Scenes sorted by date (the first is the reference) and their common grid.

    Refuses fewer than two scenes, a name without a date, two scenes of one instant, rasters on
    different grids and a band the rasters do not have.
    """
    if len(paths) < 2:
        raise UserInputError(f"A timelapse needs at least two scenes (got {len(paths)}): give the reference and "
                             "one or more secondaries.")
    scenes, grid = [], None
    for path in paths:
        dates = dates_in_name(path)
        if not dates:
            raise UserInputError(
                f"No acquisition date in the name '{os.path.basename(path)}': keep Planet's scene id in the name "
                "(e.g. 20220907_140709_64_24a3_3B_...) or put the date in it as YYYYMMDD or YYYY-MM-DD.")
        with open_raster(path) as ds:
            if not 1 <= band <= ds.count:
                raise UserInputError(f"'{os.path.basename(path)}' has {ds.count} band(s); band {band} does not "
                                     "exist. Choose a band between 1 and the band count.")
            this = Grid.of(ds)
        if grid is None:
            grid = this
        elif this != grid:
            raise UserInputError(
                f"'{os.path.basename(path)}' is not on the grid of '{os.path.basename(scenes[0].path)}' (CRS, pixel "
                "size, extent and size must match): extract the bands of one order or clip them to one extent.")
        scenes.append(Scene(path, dates[0]))
    scenes.sort(key=lambda scene: scene.when)
    for before, after in zip(scenes, scenes[1:]):
        if before.when == after.when:
            raise UserInputError(f"'{os.path.basename(before.path)}' and '{os.path.basename(after.path)}' have the "
                                 "same acquisition time; give each scene once.")
    return scenes, grid


# --------------------------------------------------------------------------- co-registration models

@dataclass(frozen=True)
class ShiftModel:
    """Offsets (reference px; dx + right, dy + down) of a secondary at reference pixel centres.

    ``coefficients_dx/dy`` are polyfit's (constant first) in the scaled column/row of the
    disparity grid ``disparity`` (``order`` 0 = a constant shift, the only coefficient).
    """

    coefficients_dx: Tuple[float, ...]
    coefficients_dy: Tuple[float, ...]
    order: int = 0
    disparity: Optional[Grid] = None

    def offsets(self, cols: np.ndarray, rows: np.ndarray, reference: Grid) -> Tuple[np.ndarray, np.ndarray]:
        """(dx, dy) at reference pixel indices ``cols``, ``rows`` (fractional, pixel centres at integers)."""
        if self.order == 0:
            return (np.full(cols.shape, self.coefficients_dx[0]), np.full(cols.shape, self.coefficients_dy[0]))
        to_disparity = ~self.disparity.transform * reference.transform
        dcols, drows = to_disparity * (cols + 0.5, rows + 0.5)
        x = (dcols - 0.5) / max(1, self.disparity.width - 1)
        y = (drows - 0.5) / max(1, self.disparity.height - 1)
        return (evaluate_ramp(np.asarray(self.coefficients_dx), x, y, self.order),
                evaluate_ramp(np.asarray(self.coefficients_dy), x, y, self.order))


def polyfit_model(path: str) -> ShiftModel:
    """The ramp polyfit fitted to a pair, from the tags of its output."""
    info = describe_disparity(path)
    name = os.path.basename(path)
    if TAG_POLYFIT_COEF_DX not in info.tags or TAG_POLYFIT_COEF_DY not in info.tags:
        raise UserInputError(f"'{name}' carries no polynomial fit (tags {TAG_POLYFIT_COEF_DX}/DY): give the outputs "
                             "of surfacemotion:polyfit (run it again if they were made before it stored its fit), "
                             "or choose the median co-registration.")
    if info.tags.get(TAG_POLYFIT_DEM, "none") != "none":
        raise UserInputError(f"'{name}' was de-ramped with a DEM term, which the timelapse cannot evaluate: run "
                             "surfacemotion:polyfit without a DEM for it, or choose the median co-registration.")
    return ShiftModel(tuple(json.loads(info.tags[TAG_POLYFIT_COEF_DX])),
                      tuple(json.loads(info.tags[TAG_POLYFIT_COEF_DY])),
                      int(info.tags.get(TAG_POLYFIT_ORDER, "1")),
                      Grid(info.crs, info.transform, info.width, info.height))


def median_model(path: str, max_cells: int = 4_000_000) -> ShiftModel:
    """A constant shift: the median valid dx and dy of a disparity map (read decimated when large)."""
    info = describe_disparity(path)
    with open_raster(path) as ds:
        factor = max(1.0, np.sqrt(info.width * info.height / max_cells))
        shape = (max(1, int(info.height / factor)), max(1, int(info.width / factor)))
        if factor > 1:
            dx = ds.read(1, out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
            dy = ds.read(2, out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
            valid = ds.read(3, out_shape=shape, resampling=Resampling.nearest)
            ok = np.isfinite(dx) & np.isfinite(dy) & np.isfinite(valid) & (valid != 0)
            dx[~ok] = np.nan
            dy[~ok] = np.nan
        else:
            dx, dy, ok = read_offsets(ds, is_asp=info.is_asp)
    if not ok.any():
        raise UserInputError(f"'{os.path.basename(path)}' has no valid offset: correlate the pair again or leave it "
                             "out.")
    return ShiftModel((float(np.nanmedian(dx)),), (float(np.nanmedian(dy)),))


def pair_days(path: str) -> Tuple[str, str]:
    """(reference day, secondary day) of a disparity raster, YYYY-MM-DD UTC."""
    tags = describe_disparity(path).tags
    if TAG_REF_DATE in tags and TAG_SEC_DATE in tags:
        return tuple(parse_iso_utc(tags[key]).strftime("%Y-%m-%d") for key in (TAG_REF_DATE, TAG_SEC_DATE))
    dates = dates_in_name(path)
    if len(dates) < 2:
        raise UserInputError(f"The dates of the pair '{os.path.basename(path)}' are unknown: it has no "
                             f"{TAG_REF_DATE}/{TAG_SEC_DATE} tags and its name does not hold two scene ids or "
                             "dates (<ref>_<sec>_...). Use the disparity rasters of surfacemotion:correlatepairs.")
    return dates[0].strftime("%Y-%m-%d"), dates[1].strftime("%Y-%m-%d")


def pair_models(scenes: Sequence[Scene], disparities: Sequence[str], correction: str) -> Dict[str, ShiftModel]:
    """Shift model of each secondary, by its day; every secondary needs its pair with the reference."""
    if correction == "none":
        return {}
    if not disparities:
        raise UserInputError(f"The '{correction}' co-registration needs the disparity rasters of the pairs "
                             "(reference, secondary); give them or choose no co-registration.")
    reference = scenes[0].day
    models = {}
    for path in disparities:
        ref_day, sec_day = pair_days(path)
        if ref_day != reference:
            raise UserInputError(f"The pair '{os.path.basename(path)}' has its reference on {ref_day}, but the "
                                 f"timelapse reference (the oldest scene) is of {reference}: give the pairs of the "
                                 "oldest scene with each other scene.")
        models[sec_day] = polyfit_model(path) if correction == "polyfit" else median_model(path)
    missing = [scene.day for scene in scenes[1:] if scene.day not in models]
    if missing:
        raise UserInputError(f"No pair with the reference ({reference}) for the secondaries of {', '.join(missing)}: "
                             "give one disparity raster per secondary, or choose no co-registration.")
    return models


# --------------------------------------------------------------------------- frames

def frame_shape(grid: Grid, max_size: int) -> Tuple[int, int]:
    """(rows, cols) of the frames: the grid averaged down so its longer side is at most ``max_size``."""
    factor = max(1.0, max(grid.width, grid.height) / float(max_size))
    return max(1, int(round(grid.height / factor))), max(1, int(round(grid.width / factor)))


def read_decimated(path: str, band: int, shape: Tuple[int, int]) -> np.ndarray:
    """One band averaged down to ``shape`` (float32, scale/offset applied, NaN = no data)."""
    with open_raster(path) as ds:
        raw = ds.read(band, out_shape=shape, resampling=Resampling.average, masked=True)
        scale = ds.scales[band - 1] or 1.0
        offset = ds.offsets[band - 1] or 0.0
    return raw.astype(np.float32).filled(np.nan) * np.float32(scale) + np.float32(offset)


def remap_secondary(image: np.ndarray, model: ShiftModel, reference: Grid) -> np.ndarray:
    """The secondary ``image`` (frame shape, decimated from ``reference``) at (x + dx, y + dy), bilinear.

    Coordinates are taken to full-resolution reference pixels for the model and back; outside
    the secondary (and next to its no data) the result is NaN.
    """
    from scipy.ndimage import map_coordinates

    rows, cols = image.shape
    fx, fy = reference.width / cols, reference.height / rows
    jj, ii = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    full_cols, full_rows = (jj + 0.5) * fx - 0.5, (ii + 0.5) * fy - 0.5
    dx, dy = model.offsets(full_cols, full_rows, reference)
    source_cols = (full_cols + dx + 0.5) / fx - 0.5
    source_rows = (full_rows + dy + 0.5) / fy - 0.5
    return map_coordinates(image.astype(np.float64), [source_rows, source_cols], order=1, mode="constant",
                           cval=np.nan, prefilter=False).astype(np.float32)


def lattice_sample(frame: np.ndarray, count: int = _SAMPLES_PER_FRAME) -> np.ndarray:
    """Finite values of ``frame`` on a regular lattice of about ``count`` cells."""
    stride = max(1, int(np.ceil(np.sqrt(frame.size / count))))
    values = frame[::stride, ::stride].ravel()
    return values[np.isfinite(values)]


def velocity_colours(speed: np.ndarray, velocity_max: float) -> np.ndarray:
    """(rows, cols, 3) float RGB of the colour ramp for ``speed`` / ``velocity_max`` (clipped 0…1)."""
    fraction = np.clip(np.nan_to_num(speed / velocity_max), 0.0, 1.0)
    stops = [stop for stop, _ in VELOCITY_RAMP]
    return np.dstack([np.interp(fraction, stops, [colour[k] for _, colour in VELOCITY_RAMP]) for k in range(3)])


def velocity_overlay(path: str, reference: Grid, shape: Tuple[int, int]) -> np.ndarray:
    """Speed (m/yr, NaN = none) of a velocity raster resampled bilinearly onto the frame grid."""
    with open_raster(path) as ds:
        band = band_index_by_description(ds, "speed (m/yr)") or 1
    rows, cols = shape
    transform = reference.transform * Affine.scale(reference.width / cols, reference.height / rows)
    return resample_to_grid(path, Grid(reference.crs, transform, cols, rows), band=band, resampling="bilinear",
                            dtype=np.float32)


def compose(frame: np.ndarray, limits: Tuple[float, float], speed: Optional[np.ndarray], velocity_max: float,
            opacity: float) -> np.ndarray:
    """(rows, cols, 3) uint8: the grey stretch of ``frame``, the speed blended over it where finite."""
    grey = stretch(frame.astype(np.float32), limits)
    rgb = np.dstack([grey, grey, grey])
    if speed is None:
        return rgb
    where = np.isfinite(speed)
    blended = (1.0 - opacity) * rgb + opacity * velocity_colours(speed, velocity_max)
    rgb[where] = np.rint(blended[where]).astype(np.uint8)
    return rgb


def label_scale(shape: Tuple[int, int]) -> int:
    """Enlargement of the 11-px bitmap font: about 1/30 of the frame height, at least 1."""
    return max(1, int(round(shape[0] / 330.0)))


# --------------------------------------------------------------------------- outputs

def ffmpeg_path() -> Optional[str]:
    """ffmpeg on PATH, else the binary of the imageio-ffmpeg package when installed (``pip install
    imageio-ffmpeg``: a static ffmpeg with libx264, also on Windows and macOS QGIS), else None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return None


def write_mp4(images: Sequence, path: str, frame_ms: int, ffmpeg: str) -> None:
    """H.264 MP4 of the RGB ``images`` (``frame_ms`` each) through ffmpeg, written atomically.

    Odd sizes are padded by one black row/column (yuv420p needs even sizes).
    """
    def check(tmp: str) -> None:
        if os.path.getsize(tmp) == 0:
            raise OSError("ffmpeg wrote an empty MP4")

    folder_near = os.path.dirname(os.path.abspath(path))
    with temporary_folder(folder_near, "timelapse-frames") as folder, atomic_file(path, verify=check) as tmp:
        for index, image in enumerate(images):
            image.save(os.path.join(folder, f"frame_{index:05d}.png"))
        command = [ffmpeg, "-y", "-loglevel", "error", "-framerate", f"{1000.0 / frame_ms:.6g}",
                   "-i", os.path.join(folder, "frame_%05d.png"), "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", tmp]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"ffmpeg failed: {done.stderr.strip()[-400:]}")


def make_timelapse(scene_paths: Sequence[str], output_gif: str, band: int = 1, correction: str = "none",
                   disparities: Sequence[str] = (), velocity: Optional[str] = None, velocity_max: float = 0.0,
                   opacity: float = 0.5, max_size: int = 1600, frame_ms: int = 700, show_dates: bool = True,
                   mp4: bool = True, progress: Optional[Callable[[float], None]] = None,
                   is_canceled: Optional[Callable[[], bool]] = None) -> dict:
    """Write the timelapse GIF (and MP4) of the scenes; see the module docstring.

    Returns path, path_mp4 (None when not written), dates (YYYY-MM-DD, in frame order), size
    (rows, cols), limits (the shared stretch), velocity_max (m/yr, None without overlay), label_box
    (x0, y0, x1, y1 of the date) and notes (log lines).
    """
    from PIL import Image

    if not output_gif.lower().endswith(".gif"):
        raise UserInputError(f"The timelapse file must end with .gif (got '{os.path.basename(output_gif)}').")
    scenes, grid = collect_scenes(scene_paths, band)
    models = pair_models(scenes, disparities, correction)
    shape = frame_shape(grid, max_size)
    require_memory(_BYTES_PER_FRAME_PIXEL * shape[0] * shape[1] * len(scenes),
                   f"A timelapse of {len(scenes)} frames of {shape[1]} x {shape[0]} pixels",
                   "Lower the maximum frame size or give fewer scenes.")
    frames, samples = [], []
    for index, scene in enumerate(scenes):
        check_canceled(is_canceled)
        frame = read_decimated(scene.path, band, shape)
        if scene.day in models:
            frame = remap_secondary(frame, models[scene.day], grid)
        samples.append(lattice_sample(frame))
        frames.append(frame.astype(np.float16))
        if progress:
            progress(60.0 * (index + 1) / len(scenes))
    values = np.concatenate(samples)
    if values.size == 0:
        raise UserInputError("The scenes have no valid pixel (every value is nodata): check the band. Nothing was "
                             "written.")
    low, high = (float(v) for v in np.percentile(values, PERCENTILES))
    limits = (low, high if high > low else low + 1.0)
    speed = velocity_overlay(velocity, grid, shape) if velocity else None
    if speed is not None:
        if not np.isfinite(speed).any():
            raise UserInputError(f"The velocity raster '{os.path.basename(velocity)}' has no value over the scenes: "
                                 "give a velocity map of this area.")
        velocity_max = velocity_max or float(np.nanpercentile(speed, 98)) or 1.0
    images, palette, box = [], [], None
    for index, (scene, frame) in enumerate(zip(scenes, frames)):
        check_canceled(is_canceled)
        image = Image.fromarray(compose(frame, limits, speed, velocity_max, opacity), "RGB")
        if show_dates:
            box = burn_label(image, scene.day, label_scale(shape))
        palette.append(palette_frame(image))
        if mp4:
            images.append(image)
        if progress:
            progress(60.0 + 30.0 * (index + 1) / len(scenes))
    write_gif(palette, output_gif, frame_ms)
    notes, path_mp4 = [], None
    if mp4:
        ffmpeg = ffmpeg_path()
        if ffmpeg is None:
            notes.append("ffmpeg is not on PATH (nor the imageio-ffmpeg package installed): no MP4 was written "
                         "(the GIF was).")
        else:
            path_mp4 = os.path.splitext(output_gif)[0] + ".mp4"
            try:
                write_mp4(images, path_mp4, frame_ms, ffmpeg)
            except BaseException:
                os.remove(output_gif)  # both outputs or none
                raise
    if progress:
        progress(100.0)
    return {"path": output_gif, "path_mp4": path_mp4, "dates": [scene.day for scene in scenes], "size": shape,
            "limits": limits, "velocity_max": velocity_max if speed is not None else None, "label_box": box,
            "notes": notes}
