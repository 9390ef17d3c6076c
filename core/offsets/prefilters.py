"""Image pre-filters applied before offset tracking (REFERENCE §4.2 point 3).

They suppress what differs between two acquisitions but is not motion:
illumination gradients, shadows, haze and seasonal brightness. Every filter
maps a 2-D float image to a float32 image of the same shape and works on any
window of an image given ``margin(method, size)`` extra pixels on each side,
so block-wise filtering equals filtering the whole image.

``none``      the image as is.
``wallis``    local contrast normalisation (autoRIFT): (I - mean_w) / std_w over
              a ``size`` x ``size`` box (default 5 px; 21 suits SAR).
``highpass``  Gaussian high-pass: I - G_sigma * I, sigma = ``size`` px (default 3, pycorr_iceflow).
``log``       Laplacian of Gaussian, sigma = ``size`` px (default 1.4, Ames Stereo Pipeline),
              sign flipped so bright blobs stay bright.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..choices import Choices
from ..errors import UserInputError

#: Pre-filters (value, label).
PREFILTERS = Choices(("none", "None"), ("wallis", "Wallis"), ("highpass", "Gaussian high-pass"),
                     ("log", "Laplacian of Gaussian"))
DEFAULT_SIZES = {"none": 0.0, "wallis": 5.0, "highpass": 3.0, "log": 1.4}
#: Gaussian kernels are truncated at this many sigmas (scipy's default is 4).
_TRUNCATE = 4.0
#: Floor on the local standard deviation of the Wallis filter: flat areas come out 0, not NaN.
_WALLIS_FLOOR = 1e-6


def check_prefilter(method: str, size: float = 0.0) -> float:
    """Validate a pre-filter choice; return the size to use (the default for ``size <= 0``)."""
    PREFILTERS.check(method, "pre-filter")
    if size is None or size <= 0:
        return DEFAULT_SIZES[method]
    if method == "wallis" and (int(size) != size or size < 3):
        raise UserInputError(f"The Wallis window must be a whole number of pixels >= 3; got {size}.")
    if method in ("highpass", "log") and size > 50:
        raise UserInputError(f"The pre-filter sigma must be at most 50 px; got {size}.")
    return float(size)


def prefilter_margin(method: str, size: float) -> int:
    """Pixels needed on each side of a window so the filtered window is exact."""
    if method == "none":
        return 0
    if method == "wallis":
        return int(size) // 2 + 1
    return int(math.ceil(_TRUNCATE * size)) + 1


def apply_prefilter(image: np.ndarray, method: str, size: float) -> np.ndarray:
    """Filter ``image`` (2-D) with ``method`` of scale ``size`` (see the module docstring).

    Returns float32 (the high-pass of a float32 image is computed in float32). Pixels within ``prefilter_margin`` of the array edge are
    affected by the (mirror) boundary; callers read that margin and drop it.
    """
    PREFILTERS.check(method, "pre-filter")
    if method == "highpass" and np.asarray(image).dtype == np.float32:  # float32 in, float32 arithmetic
        image = np.asarray(image)
        return image - gaussian_smoothed(image, size)
    image = np.asarray(image, dtype=np.float64)
    if method == "none":
        return image.astype(np.float32)
    if method == "wallis":
        width = int(size)
        mean = ndimage.uniform_filter(image, width, mode="mirror")
        mean_sq = ndimage.uniform_filter(image * image, width, mode="mirror")
        std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
        return ((image - mean) / (std + _WALLIS_FLOOR)).astype(np.float32)
    if method == "highpass":
        return (image - gaussian_smoothed(image, size)).astype(np.float32)
    return (-ndimage.gaussian_laplace(image, size, mode="mirror", truncate=_TRUNCATE)).astype(np.float32)  # log


def gaussian_smoothed(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of standard deviation ``sigma`` px, mirror boundary, truncated at
    ``_TRUNCATE`` sigmas: ``ndimage.gaussian_filter(image, sigma, mode="mirror", truncate=4)``,
    computed by OpenCV's SIMD separable filter when OpenCV is installed (several times faster).
    Keeps float32 input float32, otherwise float64."""
    image = np.asarray(image)
    if image.dtype != np.float32:
        image = image.astype(np.float64)
    radius = int(_TRUNCATE * sigma + 0.5)
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is None or min(image.shape) <= radius:  # OpenCV's reflection needs the kernel inside the image
        return ndimage.gaussian_filter(image, sigma, mode="mirror", truncate=_TRUNCATE)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    return cv2.sepFilter2D(image, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
