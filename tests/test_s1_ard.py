"""surfacemotion:s1grdtoard core: sarsen in its own venv on a real (cropped) Sentinel-1 GRD product.

tests/data/s1 holds sarsen 0.9.6's test product (source distribution, Apache-2.0): real manifest,
orbit, annotation and calibration of S1B_IW_GRDH_1SDV_20211223T051122 over central Italy, whose
measurement image sarsen ships blanked (all 0). We replaced the blank with a constant DN of 150
(same size) so calibration and geometry can be checked against the annotation independently;
the Rome 30 m DEM is sarsen's too.
"""
import glob
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio

from core.errors import Cancelled, UserInputError
from core.sentinel1.ard import grd_to_ard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data", "s1")
SAFE = os.path.join(DATA, "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE")
DEM = os.path.join(DATA, "Rome-30m-DEM.tif")
PYTHON = os.path.join(REPO, ".venv-sarsen", "bin", "python")
DN = 150.0


def annotation_values(tag):
    """(lat, lon, value) of the annotation's geolocation grid points, and the β⁰ calibration constant."""
    annotation = glob.glob(os.path.join(SAFE, "annotation", "s1b-iw-grd-vv-*.xml"))[0]
    points = ET.parse(annotation).getroot().iter("geolocationGridPoint")
    grid = np.array([[float(p.find(k).text) for k in ("latitude", "longitude", tag)] for p in points])
    calibration = glob.glob(os.path.join(SAFE, "annotation", "calibration", "calibration-*.xml"))[0]
    beta = float(ET.parse(calibration).getroot().find(".//betaNought").text.split()[0])
    return grid, beta


def test_gtc_sigma0_matches_the_annotation_calibration_and_incidence(tmp_path):
    aoi = (12.46, 41.96, 12.53, 42.03)  # inside the DEM (lon/lat, the DEM's CRS)
    result = grd_to_ard(SAFE, DEM, str(tmp_path), product_type="gtc_sigma0", polarisations=["VV"], bounds=aoi,
                        python=PYTHON)
    stem = "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371"
    assert sorted(os.listdir(tmp_path)) == [f"{stem}_GTCsigma0_VV.qml", f"{stem}_GTCsigma0_VV.tif",
                                            f"{stem}_lsmask.qml", f"{stem}_lsmask.tif"]  # styles from the core
    with rasterio.open(result["paths"]["VV"]) as ds:
        sigma0 = ds.read(1)
        assert ds.transform.e < 0 and ds.crs.is_geographic  # north-up on the DEM grid
        assert ds.bounds.left == pytest.approx(aoi[0], abs=1e-3) and ds.bounds.top == pytest.approx(aoi[3], abs=1e-3)
        assert ds.shape == (252, 252)  # 0.07° / (1/3600)°
        centre = ds.xy(ds.height // 2, ds.width // 2)
    assert np.isfinite(sigma0).all()
    grid, beta_lut = annotation_values("incidenceAngle")
    beta0 = DN ** 2 / beta_lut ** 2  # β⁰ = DN² / A_β²
    incidence = np.rad2deg(np.arcsin(sigma0 / beta0))  # σ⁰ = β⁰ sin θ_e
    # independent reference: plane fit of the annotation incidence angles near the AOI
    near = np.argsort(np.hypot(grid[:, 0] - centre[1], grid[:, 1] - centre[0]))[:8]
    design = np.column_stack([grid[near, 0], grid[near, 1], np.ones(len(near))])
    coefficients, *_ = np.linalg.lstsq(design, grid[near, 2], rcond=None)
    expected = coefficients @ [centre[1], centre[0], 1.0]
    assert incidence[126, 126] == pytest.approx(expected, abs=0.3)
    assert 0.02 < np.ptp(incidence) < 0.5  # ~7 km across track: a few tenths of a degree
    with rasterio.open(result["ls_mask"]) as ds:
        mask = ds.read(1)
        assert ds.dtypes[0] == "uint8" and set(np.unique(mask)) <= {0, 1, 2}


def test_bad_products_and_missing_sarsen_give_clear_errors(tmp_path):
    with pytest.raises(UserInputError, match="make sarsen"):
        grd_to_ard(SAFE, DEM, str(tmp_path), python=str(tmp_path / "no-python"))
    with pytest.raises(UserInputError, match="not a Sentinel-1 .SAFE folder"):
        grd_to_ard(DATA, DEM, str(tmp_path), python=PYTHON)
    with pytest.raises(UserInputError, match="has no HH image"):
        grd_to_ard(SAFE, DEM, str(tmp_path), polarisations=["HH"], python=PYTHON)
    with pytest.raises(UserInputError, match="does not overlap the DEM"):
        grd_to_ard(SAFE, DEM, str(tmp_path), bounds=(13, 43, 13.1, 43.1), python=PYTHON)
    assert os.listdir(tmp_path) == []


def shifted_dem(folder, east_degrees):
    """The Rome DEM moved ``east_degrees`` east."""
    with rasterio.open(DEM) as src:
        profile, data, transform = src.profile, src.read(1), src.transform
    profile.update(transform=transform * transform.translation(east_degrees / transform.a, 0))
    path = os.path.join(folder, f"dem_{east_degrees:g}.tif")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def test_dem_coverage_of_the_scene_is_checked_before_sarsen_starts(tmp_path):
    from core.sentinel1.ard import product_footprint

    footprint = product_footprint(SAFE)
    assert footprint[0] == (14.925448, 40.876698) and len(footprint) == 4  # (lon, lat) from manifest.safe
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out = tmp_path / "out"
    # 10° east (lon 22.4°) is outside the footprint (lon 11.87…15.32°): refused before sarsen is started
    # (no interpreter here, so reaching sarsen would say so instead)
    with pytest.raises(UserInputError, match=r"does not cover the product footprint \(lon 11\.866…15\.322°"):
        grd_to_ard(SAFE, shifted_dem(str(inputs), 10.0), str(out), python=str(tmp_path / "no-python"))
    # 2° east (lon 14.4°) is inside: the check passes and the run reaches the (missing) interpreter
    with pytest.raises(UserInputError, match="make sarsen"):
        grd_to_ard(SAFE, shifted_dem(str(inputs), 2.0), str(out), python=str(tmp_path / "no-python"))
    assert not out.exists()


def test_an_output_grid_too_large_for_the_memory_is_refused_before_sarsen(tmp_path):
    with pytest.raises(UserInputError, match=r"output grid of 360,000 × 360,000 pixels.*GiB of memory.*"
                                             r"coarser resolution \(RESOLUTION ≥ "):
        grd_to_ard(SAFE, DEM, str(tmp_path / "out"), resolution=1 / 3600 / 1000, python=str(tmp_path / "no-python"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stderr", ["sarsen failed: RasterioIOError: Free disk space available is 4096 bytes, "
                                    "whereas 1048576 are at least necessary.",
                                    "sarsen failed: OSError: [Errno 28] No space left on device",
                                    "ERROR 1: TIFFAppendToStrip:Write error at scanline 12"])
def test_a_full_disk_during_sarsen_is_reported_as_a_full_disk_not_as_dem_coverage(tmp_path, stderr):
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\necho 'PROGRESS 10 terrain'\necho '{stderr}' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(UserInputError) as raised:
        grd_to_ard(SAFE, DEM, str(tmp_path / "out"), product_type="gtc_gamma0", bounds=(12.47, 41.97, 12.49, 41.99),
                   python=str(fake))
    message = str(raised.value)
    assert "No space left on" in message and "DEM" not in message, message
    assert not (tmp_path / "out").exists()


def test_a_failing_sarsen_does_not_blame_the_dem_coverage(tmp_path):
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'sarsen failed: ValueError: orbit interpolation' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(UserInputError, match=r"sarsen failed: ValueError: orbit interpolation Nothing was written\. "
                                             r"Check the product") as raised:
        grd_to_ard(SAFE, DEM, str(tmp_path / "out"), product_type="gtc_gamma0", bounds=(12.47, 41.97, 12.49, 41.99),
                   python=str(fake))
    assert "footprint" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_cancel_kills_sarsen_and_leaves_nothing(tmp_path):
    calls = []

    def is_canceled():
        calls.append(1)
        return len(calls) > 10  # after about two seconds of polling

    with pytest.raises(Cancelled):
        grd_to_ard(SAFE, DEM, str(tmp_path), product_type="rtc_gamma0", bounds=(12.46, 41.96, 12.53, 42.03),
                   python=PYTHON, is_canceled=is_canceled)
    assert os.listdir(tmp_path) == []


def test_zip_products_are_extracted_and_named_polarisations_found(tmp_path):
    import shutil

    from core.sentinel1.ard import measurement_group, product_polarisations, safe_folder

    archive = shutil.make_archive(str(tmp_path / os.path.basename(SAFE)[:-5]), "zip", DATA, os.path.basename(SAFE))
    work = tmp_path / "work"
    work.mkdir()
    safe = safe_folder(archive, str(work))
    assert os.path.basename(safe) == os.path.basename(SAFE) and os.path.isfile(os.path.join(safe, "manifest.safe"))
    assert product_polarisations(safe) == ["VV"] and measurement_group(safe, "VV") == "IW/VV"
    assert safe_folder(os.path.join(SAFE, "manifest.safe"), str(work)) == SAFE
