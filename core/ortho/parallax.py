"""Parallax sensitivity of an RPC scene: how far ortho content moves per metre of DEM error (REFERENCE §7.2).

A ground point X at height h is seen by the raw pixel (col, row) = RPC(X, h). Intersecting that pixel's
line of sight with the height h + δ gives X'; t = (X - X') / δ (metres per metre, horizontal, in the
map CRS). An ortho made on a DEM Δh metres below the surface shows the content of the true point at
X + Δh·t: |t| ≈ tan(off-nadir angle), t points away from the satellite.
"""
from __future__ import annotations

from typing import Callable, Tuple

import numpy as np

from .rpc import RpcModel

#: Height step (m) of the finite difference; the sensitivity is nearly linear over hundreds of metres.
DELTA_HEIGHT = 50.0


def parallax_sensitivity(model: RpcModel, x, y, h, to_lonlat: Callable, from_lonlat: Callable,
                         delta: float = DELTA_HEIGHT) -> Tuple[np.ndarray, np.ndarray]:
    """(t_east, t_north) in m/m at map points ``x``, ``y`` (map CRS, m) of ellipsoidal height ``h`` (m);
    ``to_lonlat(x, y)`` and ``from_lonlat(lon, lat)`` convert between the map CRS and degrees."""
    x, y, h = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(x, y, h))
    lon, lat = to_lonlat(x, y)
    col, row = model.ground_to_image(lon, lat, h)
    lon2, lat2 = model.image_to_ground_at_height(col, row, h + delta)
    x2, y2 = from_lonlat(lon2, lat2)
    return (x - np.asarray(x2)) / delta, (y - np.asarray(y2)) / delta
