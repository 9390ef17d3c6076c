"""Run sarsen for surfacemotion:s1grdtoard in the isolated sarsen venv (`make sarsen`).

    .venv-sarsen/bin/python tools/sarsen_runner.py --product S1..SAFE --group IW/VV --dem dem.tif \
        --mode gtc|rtc --backscatter out.tif [--geometry geometry.tif]

Writes, on the DEM grid (as sarsen does; rows may run south to north), scratch files that the
plugin reads back, converts and writes as its verified outputs (core/sentinel1/ard.py):
* ``--backscatter``: GTC beta nought (mode gtc) or RTC gamma nought with gamma flattening
  (Small 2011, mode rtc), float32 linear power;
* ``--geometry`` (optional): band 1 = ellipsoid incidence angle (degrees), band 2 = local
  layover/shadow code (0 none, 1 layover, 2 shadow) from the terrain slope in the plane of
  incidence: layover where the slope towards the sensor exceeds the incidence angle, shadow
  where the slope away from it exceeds 90° minus the incidence angle.

Progress lines ``PROGRESS <percent> <stage>`` go to stdout; errors to stderr, exit code 1.
"""
import argparse
import logging
import sys


def progress(percent: float, stage: str) -> None:
    print(f"PROGRESS {percent:.0f} {stage}", flush=True)


def block_progress(start: float, stop: float):
    """A dask callback printing PROGRESS lines from ``start`` towards ``stop`` % as the tasks of
    sarsen's top-level computations finish (they work block by block, ``--chunks`` DEM pixels a
    side); each computation takes half of the range left, so the percentages only rise. Nested
    computations (inside a task, in a worker thread) are not counted."""
    import threading

    from dask.callbacks import Callback

    class Blocks(Callback):
        def __init__(self):
            super().__init__()
            self.base, self.share, self.printed = start, 0.0, int(start)

        def _start_state(self, dsk, state):
            if threading.current_thread() is threading.main_thread():
                self.base += self.share
                self.share = (stop - self.base) / 2.0

        def _posttask(self, key, result, dsk, state, worker_id):
            if threading.current_thread() is not threading.main_thread():
                return
            done = len(state["finished"])
            total = done + sum(len(state[name]) for name in ("ready", "waiting", "running"))
            percent = int(self.base + self.share * done / max(total, 1))
            if percent > self.printed:
                self.printed = percent
                progress(percent, "terrain correction")

    return Blocks()


#: Smallest last block sarsen's overlaps (the flattening's at least 4 px each side) can take.
MIN_LAST_BLOCK = 8
#: sarsen writes its output in blocks of the chunk size, and GeoTIFF blocks are multiples of 16 px.
BLOCK_MULTIPLE = 16


def sliver_free_chunks(chunks: int, sizes) -> int:
    """The block side from ``chunks`` up (a multiple of ``BLOCK_MULTIPLE``) that leaves no last
    block thinner than ``MIN_LAST_BLOCK`` along the DEM's ``sizes`` (a 3 px sliver breaks dask's
    overlap)."""
    side = max(BLOCK_MULTIPLE, -(-int(chunks) // BLOCK_MULTIPLE) * BLOCK_MULTIPLE)
    while any(size > side and 0 < size % side < MIN_LAST_BLOCK for size in sizes):
        side += BLOCK_MULTIPLE
    return side


def geometry(product, dem_path: str, output: str) -> None:
    import numpy as np
    import xarray as xr
    from sarsen import geocoding, orbit, scene

    dem_raster = scene.open_dem_raster(dem_path)
    dem_ecef = scene.convert_to_dem_ecef(dem_raster)
    interpolator = orbit.OrbitPolyfitInterpolator.from_position(product.state_vectors())
    acquisition = geocoding.backward_geocode(dem_ecef, interpolator)
    distance = acquisition.dem_distance.transpose("axis", "y", "x").values  # satellite -> ground, metres
    look = -distance / np.linalg.norm(distance, axis=0)  # ground -> satellite, unit vector
    ecef = dem_ecef.transpose("axis", "y", "x").values
    lon = np.deg2rad(dem_raster.x.values)[None, :]
    lat = np.deg2rad(dem_raster.y.values)[:, None] if dem_raster.rio.crs.is_geographic else None
    if lat is None:  # projected DEM: geodetic normal from the ECEF position direction (sphere approx.)
        up = ecef / np.linalg.norm(ecef, axis=0)
    else:
        up = np.stack(np.broadcast_arrays(np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon),
                                          np.sin(lat) + 0 * lon))
    dx = np.gradient(ecef, axis=2)
    dy = np.gradient(ecef, axis=1)
    normal = np.cross(dx, dy, axis=0)
    normal /= np.linalg.norm(normal, axis=0)
    normal *= np.sign((normal * up).sum(axis=0))  # upward
    cos_incidence = np.clip((look * up).sum(axis=0), -1, 1)
    incidence = np.arccos(cos_incidence)
    horizontal = look - cos_incidence * up  # towards the sensor, in the local horizontal plane
    horizontal /= np.linalg.norm(horizontal, axis=0)
    slope_towards = np.arctan2((normal * horizontal).sum(axis=0), (normal * up).sum(axis=0))
    code = np.zeros(incidence.shape, np.float32)
    code[slope_towards > incidence] = 1
    code[slope_towards < incidence - np.pi / 2] = 2
    out = xr.DataArray(np.stack([np.rad2deg(incidence).astype(np.float32), code]),
                       dims=("band", "y", "x"), coords={"band": [1, 2], "y": dem_raster.y, "x": dem_raster.x},
                       attrs={"long_name": ("ellipsoid_incidence_deg", "layover_shadow")})  # band descriptions
    out = out.rio.write_crs(dem_raster.rio.crs)
    out.rio.to_raster(output, dtype="float32")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--product", required=True)
    parser.add_argument("--group", required=True, help="measurement group, e.g. IW/VV")
    parser.add_argument("--dem", required=True)
    parser.add_argument("--mode", choices=("gtc", "rtc"), required=True)
    parser.add_argument("--backscatter", required=True)
    parser.add_argument("--geometry")
    parser.add_argument("--chunks", type=int, default=1024)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        from sarsen import apps, sentinel1

        progress(2, "open product")
        product = sentinel1.Sentinel1SarProduct(args.product, args.group)
        if args.geometry:
            progress(5, "geometry")
            geometry(product, args.dem, args.geometry)
        progress(40, "terrain correction")
        import rioxarray

        dem = rioxarray.open_rasterio(args.dem)  # lazy: only the header is read
        sizes = (dem.rio.height, dem.rio.width)
        dem.close()
        chunks = sliver_free_chunks(args.chunks, sizes)
        smallest = min(min(size, chunks, size % chunks or chunks) for size in sizes)
        # the flattening overlap (128 px by default) must not exceed the smallest chunk of a small AOI
        with block_progress(40, 99):
            apps.terrain_correction(product, args.dem, output_urlpath=args.backscatter,
                                    correct_radiometry="gamma_bilinear" if args.mode == "rtc" else None,
                                    chunks=chunks, radiometry_bound=max(4, min(128, smallest // 2)))
        progress(100, "done")
    except Exception as exc:  # reported to the plugin as a clear error
        print(f"sarsen failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
