"""Feedback during long runs (issue 11, point 7): progress per block and the correlation summary line.

Every run is a real one through Processing, with the block size forced small (the engines'
block-size knobs are patched in the plugin's own modules) so a raster gives several blocks; the
progress must rise strictly with every block and end at 100 %, and the numbers of the summary
line must equal those computed here from the written file.
"""
import csv
import importlib
import inspect
import os
import re
import time

import numpy as np
import pytest
import rasterio

from test_itslive_algorithms import VX, VY
from test_s1_algorithms import WHEN, write_ard
from texture import fourier_shifted

CROP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "s2_b03_crop.tif")
#: Cells per correlation block forced by the tests (the engine's own choice gives one block here).
CHIPS_PER_BLOCK = 600
SUMMARY = re.compile(
    r"Correlated (?P<cells>[\d,]+) cells: (?P<valid>[\d,]+) valid \((?P<percent>[\d.]+) %\); median offset "
    r"dx (?P<dx>[-+][\d.]+) px, dy (?P<dy>[-+][\d.]+) px \((?P<east>[-+][\d.]+) m east, (?P<north>[-+][\d.]+) m "
    r"north\), \|offset\| (?P<magnitude>[\d.]+) px \((?P<ground>[\d.]+) m\); (?P<seconds>[\d.]+) s")


def progress_feedback():
    """A QgsProcessingFeedback that keeps every progress value in ``values`` and its info
    messages in ``infos``."""
    from qgis.core import QgsProcessingFeedback

    class Recording(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.values, self.infos = [], []

        def setProgress(self, value):  # noqa: N802 (QGIS API name)
            self.values.append(value)
            super().setProgress(value)

        def pushInfo(self, text):  # noqa: N802 (QGIS API name)
            self.infos.append(text)
            super().pushInfo(text)

    return Recording()


def plugin_module(name: str):
    """The plugin's copy of a core module (Processing runs ``surface_motion.core``, not ``core``)."""
    return importlib.import_module(f"surface_motion.core.{name}")


def count_calls(monkeypatch, module, name: str, **forced):
    """Wrap the block function ``module.name`` so the arguments ``forced`` apply; returns the list of
    the numbers of blocks it gave, one entry per call."""
    real = getattr(module, name)
    signature = inspect.signature(real)
    counts = []

    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments.update(forced)
        blocks = list(real(*bound.args, **bound.kwargs))
        counts.append(len(blocks))
        return blocks

    monkeypatch.setattr(module, name, wrapped)
    return counts


def assert_rises_per_block(values, blocks: int) -> None:
    """One strictly rising progress value per block, the last one 100 %."""
    assert blocks >= 5, f"only {blocks} blocks: the test raster should give several"
    assert len(values) >= blocks
    assert all(later > earlier for earlier, later in zip(values, values[1:])), values
    assert values[-1] == 100.0


# --------------------------------------------------------------------------- correlation


def write_float(path, array, profile) -> str:
    with rasterio.open(path, "w", **dict(profile, dtype="float32", count=1, nodata=None)) as ds:
        ds.write(array.astype(np.float32), 1)
    return str(path)


@pytest.fixture
def crop_pair(tmp_path):
    """The Sentinel-2 crop (10 m, farmland and a bay) and two copies moved by exact sub-pixel shifts."""
    with rasterio.open(CROP) as ds:
        image, profile = ds.read(1).astype(np.float64), ds.profile
    paths = [write_float(tmp_path / "ref.tif", image, profile)]
    for name, (dx, dy) in (("sec_a", (0.7, -1.4)), ("sec_b", (-0.4, 0.9))):
        paths.append(write_float(tmp_path / f"{name}.tif", fourier_shifted(image, dx=dx, dy=dy), profile))
    return paths


@pytest.fixture
def small_correlation_blocks(monkeypatch):
    """Correlation blocks of ``CHIPS_PER_BLOCK`` cells; returns the block counts of the runs."""
    blocks = plugin_module("offsets.engine.blocks")
    monkeypatch.setattr(blocks, "_chips_per_block", lambda params, sweep=False: CHIPS_PER_BLOCK)
    return count_calls(monkeypatch, blocks, "_blocks")


def written_summary(path):
    """(cells, valid, dx, dy) of a disparity raster: the valid offsets as written (float32)."""
    with rasterio.open(path) as ds:
        dx, dy, valid = ds.read(1), ds.read(2), ds.read(3) == 1
        pixel = ds.transform.a / int(ds.tags()["SM_STEP"]), ds.transform.e / int(ds.tags()["SM_STEP"])
    return dx.size, int(valid.sum()), dx[valid], dy[valid], pixel


def assert_summary_line(line: str, path: str) -> re.Match:
    """The numbers of a summary line equal those computed from the written file."""
    match = SUMMARY.search(line)
    assert match, line
    cells, valid, dx, dy, (width, height) = written_summary(path)
    assert width == 10.0 and height == -10.0
    assert int(match["cells"].replace(",", "")) == cells
    assert int(match["valid"].replace(",", "")) == valid and 0 < valid < cells
    assert match["percent"] == f"{100.0 * valid / cells:.1f}"
    median_dx, median_dy = float(np.median(dx)), float(np.median(dy))
    assert match["dx"] == f"{median_dx:+.3f}" and match["dy"] == f"{median_dy:+.3f}"
    assert match["east"] == f"{width * median_dx:+.3f}" and match["north"] == f"{height * median_dy:+.3f}"
    magnitude = np.hypot(dx.astype(np.float64), dy.astype(np.float64))
    assert match["magnitude"] == f"{np.median(magnitude):.3f}"
    assert match["ground"] == f"{np.median(10.0 * magnitude):.3f}"
    return match


def test_correlatepair_reports_every_block_and_a_summary(run_algorithm, crop_pair, tmp_path,
                                                         small_correlation_blocks):
    ref, sec, _ = crop_pair
    feedback = progress_feedback()
    started = time.perf_counter()
    results, _, _ = run_algorithm("surfacemotion:correlatepair", {
        "REFERENCE": ref, "SECONDARY": sec, "CHIP_SIZE": 32, "SEARCH_RANGE": 6, "STEP": 8,
        "OUTPUT": str(tmp_path / "disp.tif")}, feedback=feedback)
    elapsed = time.perf_counter() - started
    assert small_correlation_blocks == [8]  # 61 x 77 cells in strips of 8 rows
    assert_rises_per_block(feedback.values, 8)
    lines = [text for text in feedback.infos if text.startswith("Correlated ")]
    assert len(lines) == 1
    match = assert_summary_line(lines[0], results["OUTPUT"])
    assert match["cells"] == "4,697"  # (512 - 32) / 8 + 1 = 61 rows, (640 - 32) / 8 + 1 = 77 columns
    # the known shift (0.7, -1.4) px = 7 m east, 14 m north
    assert float(match["dx"]) == pytest.approx(0.7, abs=0.02) and float(match["dy"]) == pytest.approx(-1.4, abs=0.02)
    assert 0.0 < float(match["seconds"]) <= elapsed


def test_correlate_files_returns_the_summary_of_the_written_file(crop_pair, tmp_path):
    from core.offsets.correlate import correlate_files

    ref, _, sec = crop_pair
    summary = correlate_files(ref, sec, str(tmp_path / "disp.tif"), 32, 6, 8, subpixel="gaussian")
    cells, valid, dx, dy, (width, height) = written_summary(summary.path)
    assert (summary.cells, summary.valid, summary.unit) == (cells, valid, "m")
    assert summary.valid_percent == 100.0 * valid / cells
    assert (summary.median_dx, summary.median_dy) == (float(np.median(dx)), float(np.median(dy)))
    assert summary.median_east == width * summary.median_dx and summary.median_north == height * summary.median_dy
    assert summary.median_dx == pytest.approx(-0.4, abs=0.05) and summary.median_dy == pytest.approx(0.9, abs=0.05)
    assert summary.seconds > 0.0


@pytest.mark.parametrize("parallel", [1, 2])
def test_correlatepairs_reports_every_block_of_every_pair_and_their_summaries(run_algorithm, crop_pair, tmp_path,
                                                                            small_correlation_blocks, parallel):
    ref, sec_a, sec_b = crop_pair
    table = tmp_path / "pairs.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows([["ref", "sec"], [ref, sec_a], [ref, sec_b]])
    feedback = progress_feedback()
    results, _, _ = run_algorithm("surfacemotion:correlatepairs", {
        "PAIRS": str(table), "CHIP_SIZE": 32, "SEARCH_RANGE": 6, "STEP": 8, "SUBPIXEL": 1,
        "PARALLEL_PAIRS": parallel, "OUTPUT_FOLDER": str(tmp_path / "out")}, feedback=feedback)
    assert small_correlation_blocks == [8, 8]
    # one value per block of either pair (in threads: the mean of the two pairs' shares)
    assert len(feedback.values) == 16
    assert_rises_per_block(feedback.values, 16)
    if parallel == 1:
        assert feedback.values[7] == 50.0  # the first pair's last block: half of the batch
    done = sorted(text for text in feedback.infos if "] done: " in text)
    assert [text.split("] done: ")[0] for text in done] == ["[1/2", "[2/2"]
    for text, output, (dx, dy) in zip(done, results["OUTPUT_LAYERS"], ((0.7, -1.4), (-0.4, 0.9))):
        assert text.split("] done: ")[1].startswith(output + "; Correlated ")
        match = assert_summary_line(text, output)
        assert float(match["dx"]) == pytest.approx(dx, abs=0.05) and float(match["dy"]) == pytest.approx(dy, abs=0.05)


def test_cancelling_pairs_in_threads_stops_at_the_next_block_and_leaves_no_pair(crop_pair, tmp_path, monkeypatch):
    import pandas as pd

    from core.errors import Cancelled
    from core.offsets import batch
    from core.offsets.engine import blocks

    monkeypatch.setattr(blocks, "_chips_per_block", lambda params, sweep=False: CHIPS_PER_BLOCK)
    ref, sec_a, sec_b = crop_pair
    seen = []
    with pytest.raises(Cancelled):
        batch.correlate_pair_table(pd.DataFrame({"ref": [ref, ref], "sec": [sec_a, sec_b]}), str(tmp_path / "out"),
                                   32, 6, 8, workers=2, progress=seen.append, is_canceled=lambda: bool(seen))
    assert len(seen) == 1 and 0.0 < seen[0] < 50.0  # a first block of 16, then nothing more
    assert not (tmp_path / "out").exists()  # the pairs in progress were removed, and the empty folder this run made


# --------------------------------------------------------------------------- strain rates


def test_strainrates_reports_every_block(run_algorithm, tmp_path, monkeypatch):
    strain = plugin_module("itslive.strain")
    monkeypatch.setattr(strain, "_BLOCK_ROWS", 32)
    counts = count_calls(monkeypatch, strain, "row_blocks")
    feedback = progress_feedback()
    run_algorithm("surfacemotion:strainrates", {"VX": VX, "VY": VY, "BAND": 3,
                                                "OUTPUT": str(tmp_path / "strain.tif")}, feedback=feedback)
    assert counts == [8]  # 240 rows in blocks of 32
    assert_rises_per_block(feedback.values, 8)


# --------------------------------------------------------------------------- Sentinel-1


@pytest.fixture
def ard(tmp_path):
    """Eight dates of two polarisations, 40 x 24 px (see test_s1_algorithms.write_ard)."""
    write_ard(str(tmp_path / "ard"), shape=(40, 24))
    return str(tmp_path / "ard")


def row_block_counts(monkeypatch, module_name: str, rows: int = 5):
    """Blocks of ``rows`` rows in a Sentinel-1 module; returns the block counts of its runs."""
    return count_calls(monkeypatch, plugin_module(f"sentinel1.{module_name}"), "row_blocks", block_rows=rows)


def test_s1timeseries_and_s1mtspeckle_report_every_block(run_algorithm, ard, tmp_path, monkeypatch):
    series_blocks = row_block_counts(monkeypatch, "timeseries")
    feedback = progress_feedback()
    series, _, _ = run_algorithm("surfacemotion:s1timeseries", {
        "FOLDER": ard, "UNIT": 1, "OUTPUT_FOLDER": str(tmp_path / "ts")}, feedback=feedback)
    assert series_blocks == [8]  # 40 rows in blocks of 5
    assert_rises_per_block(feedback.values, 8)

    speckle_blocks = row_block_counts(monkeypatch, "speckle")
    feedback = progress_feedback()
    run_algorithm("surfacemotion:s1mtspeckle", {"INPUT": [series["VV_VRT"]], "UNIT": 0,
                                                "OUTPUT_FOLDER": str(tmp_path / "speckle")}, feedback=feedback)
    assert speckle_blocks == [8]
    assert_rises_per_block(feedback.values, 8)


def test_s1timescan_reports_every_block(run_algorithm, ard, tmp_path, monkeypatch):
    series, _, _ = run_algorithm("surfacemotion:s1timeseries", {
        "FOLDER": ard, "UNIT": 1, "OUTPUT_FOLDER": str(tmp_path / "ts")})
    timescan = plugin_module("sentinel1.timescan")
    counts = count_calls(monkeypatch, timescan, "block_windows", memory_mb=0.0)  # one row per block
    feedback = progress_feedback()
    run_algorithm("surfacemotion:s1timescan", {"INPUT": [series["VV_VRT"]], "UNIT": 0,
                                               "OUTPUT_FOLDER": str(tmp_path / "scan")}, feedback=feedback)
    assert counts == [40]
    assert_rises_per_block(feedback.values, 40)


def test_s1animation_and_s1mosaic_report_every_frame_and_date(run_algorithm, ard, tmp_path):
    series, _, _ = run_algorithm("surfacemotion:s1timeseries", {
        "FOLDER": ard, "UNIT": 1, "OUTPUT_FOLDER": str(tmp_path / "ts")})
    feedback = progress_feedback()
    run_algorithm("surfacemotion:s1animation", {"INPUT": [series["VV_VRT"]], "MAX_SIZE": 16,
                                                "OUTPUT": str(tmp_path / "anim.gif")}, feedback=feedback)
    assert_rises_per_block(feedback.values, len(WHEN))  # one value per frame, then the GIF

    # a second track 10 columns east: a mosaic of 8 dates
    shifted = tmp_path / "track2"
    shifted.mkdir()
    with rasterio.open(series["VV_VRT"]) as vrt:
        stack, profile = vrt.read(), dict(driver="GTiff", width=vrt.width, height=vrt.height, count=1,
                                          dtype="float32", crs=vrt.crs, nodata=float("nan"),
                                          transform=vrt.transform * vrt.transform.translation(10, 0))
    for when, image in zip(WHEN, stack):
        with rasterio.open(str(shifted / f"{when:%Y%m%dT%H%M%S}_VV.tif"), "w", **profile) as ds:
            ds.write(image, 1)
    feedback = progress_feedback()
    second = sorted(str(path) for path in shifted.iterdir())
    run_algorithm("surfacemotion:s1mosaic", {"INPUT": [series["VV_VRT"], *second],
                                             "OUTPUT_FOLDER": str(tmp_path / "mosaic")}, feedback=feedback)
    assert_rises_per_block(feedback.values, 3 * len(WHEN))  # both tracks resampled and the mosaic written, per date


def test_s1grdtoard_reports_every_block_of_the_terrain_correction(run_algorithm, tmp_path, monkeypatch):
    from test_s1_algorithms import DEM, SAFE

    monkeypatch.setattr(plugin_module("sentinel1.ard"), "SARSEN_CHUNKS", 48)  # the AOI's DEM, 108 x 108 px: 9 blocks
    feedback = progress_feedback()
    run_algorithm("surfacemotion:s1grdtoard", {
        "INPUT": os.path.join(SAFE, "manifest.safe"), "DEM": DEM, "POLARISATIONS": [0],
        "AOI": "12.47,12.50,41.97,42.00 [EPSG:4326]", "OUTPUT_FOLDER": str(tmp_path / "ard")}, feedback=feedback)
    # the runner's 40-99 % (terrain correction, per finished block task) is 38-94 % of the run (95 % for sarsen)
    terrain = [value for value in feedback.values if 38.0 < value < 95.0]
    assert len(terrain) >= 9
    assert_rises_per_block(feedback.values, 9)
