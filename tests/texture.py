"""Real texture for correlation tests: the Sentinel-2 B03 crop and exact sub-pixel shifts of it."""
import functools
import os

import numpy as np
from scipy import ndimage

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "s2_b03_crop.tif")
LAND_COLUMNS = 384  # farmland; the bay (low texture) lies further right


@functools.lru_cache(maxsize=None)
def land_texture() -> np.ndarray:
    """The textured (land) part of the crop, float64. Callers must not modify it."""
    import rasterio

    with rasterio.open(DATA) as ds:
        return ds.read(1).astype(np.float64)[:, :LAND_COLUMNS]


def fourier_shifted(image: np.ndarray, *, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by dx (+ right) and dy (+ down) px, band-limited.

    Mirror padding makes the image periodic without edge jumps, so the shift does not ring.
    """
    pad_rows, pad_cols = image.shape[0] // 2, image.shape[1] // 2
    padded = np.pad(image, ((pad_rows, pad_rows), (pad_cols, pad_cols)), mode="symmetric")
    shifted = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(padded), (dy, dx))).real
    return shifted[pad_rows:pad_rows + image.shape[0], pad_cols:pad_cols + image.shape[1]]
