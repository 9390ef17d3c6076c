"""Vertical datum of a DEM: geoid undulations and the conversion to ellipsoidal heights.

RPC heights are heights above the WGS84 ellipsoid; most DEMs hold heights above a geoid
(SRTM: EGM96, Copernicus DEM: EGM2008). ellipsoidal height = DEM height + N(lon, lat) + offset,
with N the geoid undulation (m, positive where the geoid is above the ellipsoid), interpolated
bilinearly in PROJ's geoid grid (``vgridshift``) given by its full path, so a missing grid is an
error, never the silent zero shift of PROJ's "ballpark" transformation (EPSG:4326+3855 ->
EPSG:4979 without ``us_nga_egm08_25.tif`` gives 0 m without a warning).

Datum choices (:data:`VERTICAL_DATUMS`): ``crs`` reads the DEM's declared vertical CRS (compound
CRS: EPSG 5773 = EGM96, 3855 = EGM2008, none = ellipsoidal with a warning), ``ellipsoid``,
``egm96`` and ``egm2008``.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np

from ..choices import Choices
from ..errors import UserInputError

VERTICAL_DATUMS = Choices(
    ("crs", "From the DEM's CRS (vertical part of a compound CRS; none = ellipsoidal)"),
    ("ellipsoid", "Ellipsoidal heights (WGS84 ellipsoid, as the RPCs)"),
    ("egm96", "EGM96 geoid heights (SRTM, EPSG:5773)"),
    ("egm2008", "EGM2008 geoid heights (Copernicus DEM, EPSG:3855)"),
)
#: Geoid grid file names PROJ knows, by datum (the first is the one to download).
GEOID_GRIDS = {"egm96": ("egm96_15.gtx", "us_nga_egm96_15.tif"),
               "egm2008": ("us_nga_egm08_25.tif", "egm08_25.gtx")}
#: Vertical CRS EPSG codes -> datum.
VERTICAL_EPSG = {5773: "egm96", 3855: "egm2008"}
GEOID_SETTING = "SURFACEMOTION_GEOID_FOLDER"
PROJ_CDN = "https://cdn.proj.org/"


def proj_search_paths() -> List[str]:
    """The folders PROJ looks in for grids: PROJ_DATA / PROJ_LIB, GDAL's PROJ search paths,
    pyproj's data and user-writable folders."""
    paths: List[str] = []
    for name in ("PROJ_DATA", "PROJ_LIB"):
        paths += [p for p in os.environ.get(name, "").split(os.pathsep) if p]
    try:
        from osgeo import osr

        paths += list(osr.GetPROJSearchPaths() or [])
    except (ImportError, AttributeError):
        pass
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyproj import datadir

            paths.append(datadir.get_user_data_dir())
            paths += datadir.get_data_dir().split(os.pathsep)
    except Exception:  # noqa: BLE001 - pyproj absent or without a data directory: GDAL's paths remain
        pass
    unique: List[str] = []
    for path in paths:
        if path and path not in unique:
            unique.append(path)
    return unique


def find_geoid_grid(datum: str, geoid_folder: Optional[str] = None,
                    search_paths: Optional[Iterable[str]] = None) -> str:
    """Path of the geoid grid of ``datum`` ('egm96' or 'egm2008'): in ``geoid_folder`` (the provider
    setting) first, then PROJ's search path. Raises :class:`UserInputError` saying where to get it."""
    names = GEOID_GRIDS[datum]
    folders = ([geoid_folder] if geoid_folder else []) + list(proj_search_paths() if search_paths is None
                                                               else search_paths)
    for folder in folders:
        for name in names:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                return candidate
    label = "EGM2008" if datum == "egm2008" else "EGM96"
    raise UserInputError(
        f"The DEM's heights are {label} geoid heights, but PROJ's {label} grid {names[0]} was not found, so they "
        f"cannot be converted to the ellipsoidal heights the RPCs need (without it the shift would silently be "
        f"0 m, errors of up to 100 m). Download {PROJ_CDN}{names[0]} and put it into the folder of the provider "
        f"setting {GEOID_SETTING} (Processing → Options → Providers → Surface Motion Toolbox) or into PROJ's "
        f"user folder ({_first(folders)}); or, if the DEM holds ellipsoidal heights, choose 'Ellipsoidal "
        "heights'. Looked in: " + ", ".join(folders or ["(no folder)"]) + ".")


def _first(folders: List[str]) -> str:
    user = [f for f in folders if ".local" in f or "AppData" in f]
    return (user or folders or ["~/.local/share/proj"])[0]


def undulation_function(grid_path: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """N(lon, lat) in metres (degrees in, WGS84) from the geoid grid file at ``grid_path``, through
    PROJ's ``vgridshift`` (bilinear). Points outside the grid raise :class:`UserInputError`."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    options = osr.CoordinateTransformationOptions()
    options.SetOperation("+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
                         f"+step +proj=vgridshift +grids={grid_path} +multiplier=1 "
                         "+step +proj=unitconvert +xy_in=rad +xy_out=deg")
    try:
        transform = osr.CreateCoordinateTransformation(srs, srs, options)
    except RuntimeError as exc:
        transform, error = None, str(exc)
    else:
        error = ""
    if transform is None:
        raise UserInputError(f"PROJ cannot use the geoid grid '{grid_path}' ({error or 'invalid grid'}); download "
                             f"it again from {PROJ_CDN}{os.path.basename(grid_path)}.")

    def undulation(lon, lat) -> np.ndarray:
        lon, lat = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        shape = lon.shape
        points = np.column_stack([lon.ravel(), lat.ravel(), np.zeros(lon.size)])
        if points.shape[0] == 0:
            return np.zeros(shape)
        valid = np.isfinite(points[:, 0]) & np.isfinite(points[:, 1])
        out = np.full(lon.size, np.nan)
        if valid.any():
            done = np.array(transform.TransformPoints(points[valid].tolist()), dtype=np.float64)
            out[valid] = done[:, 2]
        if not np.all(np.isfinite(out[valid])):
            raise UserInputError(f"The geoid grid '{grid_path}' does not cover some DEM points; use the complete "
                                 f"global grid from {PROJ_CDN}{os.path.basename(grid_path)}.")
        return out.reshape(shape)

    return undulation


def declared_datum(crs_wkt: Optional[str]) -> Tuple[str, str]:
    """(datum, note) of a DEM CRS: the vertical part of a compound CRS ('egm96', 'egm2008',
    'ellipsoid' for an ellipsoidal 3-D CRS) or 'ellipsoid' with a warning note when it declares
    none. Unknown vertical datums raise :class:`UserInputError`."""
    from osgeo import osr

    if not crs_wkt:
        raise UserInputError("The DEM has no coordinate reference system; assign its CRS (e.g. EPSG:4326+5773 "
                             "for SRTM heights) or choose its vertical datum explicitly.")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs_wkt)
    if srs.IsCompound():
        code = srs.GetAuthorityCode("COMPD_CS|VERT_CS") or srs.GetAuthorityCode("VERT_CS")
        name = srs.GetAttrValue("COMPD_CS|VERT_CS") or srs.GetAttrValue("VERT_CS") or "unnamed"
        if code and int(code) in VERTICAL_EPSG:
            return VERTICAL_EPSG[int(code)], f"the DEM's CRS declares {name} (EPSG:{code}) heights"
        lowered = name.lower()
        for key, datum in (("egm2008", "egm2008"), ("egm08", "egm2008"), ("egm96", "egm96")):
            if key in lowered:
                return datum, f"the DEM's CRS declares {name} heights"
        raise UserInputError(
            f"The DEM's CRS declares the vertical datum '{name}'{f' (EPSG:{code})' if code else ''}, which this "
            "tool cannot convert to ellipsoidal heights. Convert the DEM to ellipsoidal (WGS84), EGM96 or EGM2008 "
            "heights first, or choose one of these as its vertical datum if that is what it holds.")
    return "ellipsoid", ("the DEM's CRS declares no vertical datum, so its heights are taken as ellipsoidal "
                         "(WGS84). SRTM and Copernicus DEMs hold geoid heights and declare only EPSG:4326: choose "
                         "'EGM96 geoid heights' (SRTM) or 'EGM2008 geoid heights' (Copernicus DEM) for them, or "
                         "the ortho is shifted by the undulation (up to 100 m) times the tangent of the view angle")


def resolve_datum(vertical_datum: str, crs_wkt: Optional[str]) -> Tuple[str, str]:
    """(effective datum among ellipsoid/egm96/egm2008, explanation) of a choice of :data:`VERTICAL_DATUMS`."""
    VERTICAL_DATUMS.check(vertical_datum, "vertical datum")
    if vertical_datum == "crs":
        return declared_datum(crs_wkt)
    return vertical_datum, f"the DEM's heights were declared {vertical_datum} by the parameter"


def ellipsoidal_shift(datum: str, geoid_folder: Optional[str] = None,
                      height_offset: float = 0.0) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The function (lon, lat) -> metres to add to DEM heights of ``datum`` to get ellipsoidal heights:
    the undulation N (0 for 'ellipsoid') plus ``height_offset``."""
    offset = float(height_offset)
    if datum == "ellipsoid":
        return lambda lon, lat: np.full(np.broadcast(np.asarray(lon), np.asarray(lat)).shape, offset)
    undulation = undulation_function(find_geoid_grid(datum, geoid_folder))
    return lambda lon, lat: undulation(lon, lat) + offset
