"""Shared raster and file I/O of the core: one way in, one verified way out.

* Reading: :func:`open_raster` gives a :class:`RasterReader` whose pixel reads
  turn every GDAL failure into a :class:`core.errors.UserInputError` naming the
  file and window; :class:`GridResampler` / :func:`resample_to_grid` resample
  any raster onto a target :class:`Grid` (nodata -> NaN).
* Writing: :class:`RasterWriter` / :func:`write_raster` for GeoTIFFs,
  :func:`atomic_file` for any other file (:func:`write_text` for text), :class:`OutputSet` for outputs that
  appear together: temporary name, fsync, read-back verification, sidecar
  style, then rename; failures (a full disk included) leave nothing behind.
* Resume: :func:`is_complete_raster`, :func:`remove_stale_temporaries`,
  :func:`output_folder`.
"""
from .files import (AtomicFile, OutputSet, atomic_file, ensure_writable_dir, output_folder,
                    remove_stale_temporaries, temporary_folder, write_failure, write_text)
from .grid import Grid, aligned_windows, row_blocks, window_text
from .memory import available_memory_bytes, require_memory
from .read import (RasterReader, band_index_by_description, band_value_range, open_raster, read_failure,
                   require_content, require_crs, require_single_band, valid_mask_from_nodata)
from .resample import RESAMPLING, SOURCE_NODATA, GridResampler, resample_to_grid
from .styles import STYLES_DIR, style_path
from .write import (COMPLETE_TAG, FLOAT_GTIFF_PROFILE, RasterWriter, default_nodata, gtiff_profile,
                    is_complete_raster, write_raster)
from . import verify

__all__ = [
    "AtomicFile", "OutputSet", "atomic_file", "ensure_writable_dir", "output_folder", "remove_stale_temporaries",
    "temporary_folder", "write_failure", "write_text", "Grid", "aligned_windows", "row_blocks", "window_text", "RasterReader",
    "band_index_by_description", "open_raster", "read_failure", "require_crs", "require_single_band",
    "valid_mask_from_nodata", "available_memory_bytes", "require_memory", "band_value_range", "require_content",
    "RESAMPLING", "SOURCE_NODATA", "GridResampler", "resample_to_grid", "STYLES_DIR", "style_path",
    "COMPLETE_TAG", "FLOAT_GTIFF_PROFILE", "RasterWriter", "default_nodata", "gtiff_profile",
    "is_complete_raster", "write_raster", "verify",
]
