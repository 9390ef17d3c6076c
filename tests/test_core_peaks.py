"""Integer peaks and quality bands of a ZNCC volume (core.offsets.peaks), and the fast
OpenCV paths of the engine's helpers against their reference implementations."""

import numpy as np
import pytest
from scipy import ndimage

import core.offsets.engine.subpixel as subpixel_module
from core.offsets.correlate import correlate_arrays
from core.offsets.peaks import EXCLUDED, MAX_PEAK_RATIO, volume_peaks
from core.offsets.prefilters import gaussian_smoothed
from core.offsets.sweep import box_sums
from texture import fourier_shifted, land_texture


def _gaussian_surface(span: int, v0: float, u0: float, height: float, width: float = 1.5) -> np.ndarray:
    v, u = np.mgrid[0:span, 0:span]
    return height * np.exp(-((v - v0) ** 2 + (u - u0) ** 2) / (2 * width ** 2))


def test_volume_peaks_on_analytic_surfaces():
    span = 9
    first = _gaussian_surface(span, 3.0, 5.0, 0.9) + 0.5 * _gaussian_surface(span, 7.0, 1.0, 1.0, 0.8)
    on_border = _gaussian_surface(span, 0.0, 4.0, 0.8)
    holes = _gaussian_surface(span, 4.0, 4.0, 0.7)
    holes[0, :] = EXCLUDED  # a row of unusable footprints
    volume = np.stack([first, on_border, holes], axis=-1).astype(np.float32)
    n_excluded = np.array([0, 0, span])
    expected_abs_mean = [np.abs(first).mean(), np.abs(on_border).mean(), np.abs(holes[1:]).mean()]

    peaks = volume_peaks(volume.copy(), n_excluded)

    np.testing.assert_array_equal(peaks.index, [[3, 5], [0, 4], [4, 4]])
    np.testing.assert_allclose(peaks.value, [first[3, 5], on_border[0, 4], holes[4, 4]], rtol=1e-6)
    np.testing.assert_array_equal(peaks.inside, [True, False, True])
    np.testing.assert_allclose(peaks.patch[0], first[2:5, 4:7], rtol=1e-6)
    np.testing.assert_allclose(peaks.snr, peaks.value / np.array(expected_abs_mean), rtol=1e-5)
    # second peak of the first surface: the other bump, (7, 1), more than 2 px away
    assert peaks.ratio[0] == pytest.approx(first[3, 5] / first[7, 1], rel=1e-5)
    assert 1.0 < peaks.ratio[2] < MAX_PEAK_RATIO


def test_excluded_positions_make_the_patch_non_finite():
    span = 7
    surface = _gaussian_surface(span, 3.0, 3.0, 0.9)
    surface[2, 4] = EXCLUDED  # inside the 3 x 3 neighbourhood of the peak
    peaks = volume_peaks(surface[..., None].astype(np.float32), np.array([1]))
    assert peaks.index[0].tolist() == [3, 3] and peaks.inside[0]
    assert np.isneginf(peaks.patch[0, 0, 2]) and np.isfinite(np.delete(peaks.patch[0].ravel(), 2)).all()


def test_fully_excluded_chip_is_not_usable():
    volume = np.full((5, 5, 1), EXCLUDED, np.float32)
    peaks = volume_peaks(volume, np.array([25]))
    assert not peaks.inside[0] and np.isneginf(peaks.value[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma", [0.8, 3.0])
def test_gaussian_smoothing_equals_scipy(dtype, sigma):
    image = land_texture()[:90, :120].astype(dtype)
    expected = ndimage.gaussian_filter(image.astype(np.float64), sigma, mode="mirror", truncate=4.0)
    smoothed = gaussian_smoothed(image, sigma)
    assert smoothed.dtype == dtype
    np.testing.assert_allclose(smoothed, expected, rtol=1e-6 if dtype == np.float32 else 1e-12,
                               atol=1e-3 if dtype == np.float32 else 1e-9)


def test_box_sums_equal_direct_sums():
    rng = np.random.default_rng(4)
    image = rng.normal(size=(37, 51)) * 1000
    mask = rng.random((37, 51)) > 0.8
    windows = np.lib.stride_tricks.sliding_window_view
    np.testing.assert_allclose(box_sums(image, 9), windows(image, (9, 9)).sum(axis=(2, 3)), rtol=1e-12,
                               atol=1e-8)
    counts = box_sums(mask, 9)
    assert counts.dtype.kind == "i"
    np.testing.assert_array_equal(counts, windows(mask, (9, 9)).sum(axis=(2, 3)))
    assert not box_sums(np.zeros((20, 20), bool), 5).any()


def test_lucas_kanade_chunks_do_not_change_the_result(monkeypatch):
    land = land_texture()
    ref, sec = land[24:152, 24:200], fourier_shifted(land, dx=-1.6, dy=0.35)[24:152, 24:200]
    whole = correlate_arrays(ref, sec, 32, 6, 4, subpixel="lk")
    monkeypatch.setattr(subpixel_module, "_LK_CHUNK", 7)
    chunked = correlate_arrays(ref, sec, 32, 6, 4, subpixel="lk")
    assert whole.valid.mean() > 0.8
    np.testing.assert_array_equal(chunked.valid, whole.valid)
    np.testing.assert_array_equal(chunked.dx, whole.dx)
    np.testing.assert_array_equal(chunked.dy, whole.dy)
    ok = whole.valid
    assert np.abs(whole.dx[ok] + 1.6).max() < 0.05 and np.abs(whole.dy[ok] - 0.35).max() < 0.05
