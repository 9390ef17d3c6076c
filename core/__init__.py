"""QGIS-free science of the Surface Motion Toolbox.

Modules here take numpy arrays and file paths and return arrays and paths.
They must never import ``qgis`` or Qt (``tests/test_core_is_qgis_free.py``
enforces it) so they run in plain Python, in subprocesses and on clusters.

Conventions shared by every module:

* Progress callbacks are ``progress(percent: float) -> None`` (0-100).
* Cancellation callbacks are ``is_canceled() -> bool``; a core function that
  sees it return True raises :class:`core.errors.Cancelled` after removing
  any partial output.
* Problems the user can fix raise :class:`core.errors.UserInputError` with a
  message saying what is wrong and how to fix it.
"""
