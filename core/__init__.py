"""QGIS-free science of the Surface Motion Toolbox.

Modules here take numpy arrays and file paths and return arrays and paths.
They must never import ``qgis`` or Qt (``tests/test_core_is_qgis_free.py``
enforces it) so they run in plain Python, in subprocesses and on clusters.

Three pipelines — :mod:`core.offsets` (optical offset tracking),
:mod:`core.itslive` and :mod:`core.sentinel1` — sit on one shared I/O layer,
:mod:`core.io`: every raster is read through its guarded reader, resampled
through its resampler and written through its verified writer (no module
opens a file for writing by itself; ``tests/test_io_discipline.py``).
:mod:`core.choices` defines every choice list once, :mod:`core.dates` the
one time scale (years of 365.25 days).

Conventions shared by every module:

* Progress callbacks are ``progress(percent: float) -> None`` (0-100).
* Cancellation callbacks are ``is_canceled() -> bool``; a core function that
  sees it return True raises :class:`core.errors.Cancelled` after removing
  any partial output.
* Problems the user can fix raise :class:`core.errors.UserInputError` with a
  message saying what is wrong and how to fix it; so do unreadable inputs and
  failed writes (a full disk included), which leave no partial output behind.
"""
