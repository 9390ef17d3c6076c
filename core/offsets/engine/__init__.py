"""The offset-tracking correlator behind :mod:`core.offsets.correlate`, one role per module.

Conventions (every module): offsets are in pixels of the image being
correlated (reference pixels at full resolution) and are passed as (dx, dy),
dx + right (columns), dy + down (rows): the feature at reference (col, row)
is found at (col + dx, row + dy) in the secondary. Arrays of offsets (B, 2)
hold dx in column 0 and dy in column 1; index arrays into images and ZNCC
volumes stay in numpy's (row, column) order and say so where they are formed.

Layout, in the order of the data flow:

* :mod:`.params`   parameters, result type, their checks, shared constants;
* :mod:`.sources`  pixel sources: windows of arrays or rasters (read through
  :class:`core.io.RasterReader`), outside = invalid;
* :mod:`.frame`    where a pair overlaps on one pixel grid and the chip grid over it;
* :mod:`.pyramid`  the coarse-to-fine driver, handed the single-level solver;
* :mod:`.blocks`   block scheduling: blocks, threads, strip assembly and its outlier tests;
* :mod:`.ladder`   the fallback chip ladder: failed cells retried with 2x, 4x chips;
* :mod:`.pipeline` the per-block pipeline: filters, texture test, forward/backward,
  rejection reasons, masked (nodata) refinement weights;
* :mod:`.search`   integer search by per-chip FFT, plain or masked (the displacement sweep is
  :mod:`core.offsets.sweep`, the peak search :mod:`core.offsets.peaks`);
* :mod:`.subpixel` sub-pixel refinement: 3x3 Gaussian fit and Lucas-Kanade;
* :mod:`.quality`  noise, texture, uncertainty, the normalised median and coherence tests.
"""
