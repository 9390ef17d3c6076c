"""The signed ("true") view angle of PlanetScope scenes (REFERENCE §3).

Planet delivers ``view_angle`` unsigned, so scenes seen from opposite sides of the ground track
look alike. With the satellite azimuth ``az`` (degrees clockwise from north, from the scene
centre towards the satellite) and the scan-line azimuth ``a`` (default 10°, typically 7–12°):
``true_view_angle = −|view_angle|`` where ``az > 180 + a`` or ``az < a`` (the satellite is west
of the scan line), else ``+|view_angle|``. Two scenes share a perspective when
``|Δ true_view_angle|`` is small.
"""
from __future__ import annotations

import numpy as np

#: Default scan-line azimuth (degrees clockwise from north) of the PlanetScope constellation.
DEFAULT_SCAN_LINE_AZIMUTH = 10.0


def true_view_angle(view_angle, satellite_azimuth, scan_line_azimuth: float = DEFAULT_SCAN_LINE_AZIMUTH
                    ) -> np.ndarray:
    """Signed view angle (degrees) of scenes with unsigned ``view_angle`` and ``satellite_azimuth``
    (degrees, any shape, NaN propagates); negative = satellite west of the scan line."""
    view = np.abs(np.asarray(view_angle, dtype=np.float64))
    azimuth = np.mod(np.asarray(satellite_azimuth, dtype=np.float64), 360.0)
    west = (azimuth > 180.0 + scan_line_azimuth) | (azimuth < scan_line_azimuth)
    signed = np.where(west, -view, view)
    return np.where(np.isnan(azimuth), np.nan, signed)
