"""Tests of core.offsets.bands: single-band extraction, UDM2 masking, metadata, names."""
import os

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.rpc import RPC
from rasterio.transform import from_origin

import core.offsets.bands as bands
from core.offsets.bands import default_nodata, extract_band, find_udm2_for, output_name_for
from core.errors import Cancelled, UserInputError

HEIGHT, WIDTH = 300, 200
TRANSFORM = from_origin(500000.0, 4500000.0, 3.0, 3.0)
CRS_UTM = CRS.from_epsg(32618)
SCENE = "20220907_140709_64_24a3_3B_AnalyticMS_SR_clip.tif"
UDM2 = "20220907_140709_64_24a3_3B_udm2_clip.tif"
CLOUD = (slice(10, 20), slice(20, 40))      # 200 px: not clear, cloud
SNOW = (slice(50, 60), slice(100, 120))     # 200 px: not clear, snow
ZEROS = (slice(290, 300), slice(0, 5))      # 50 px of value 0 in band 2 (= default nodata)
RPCS = RPC(height_off=1200.0, height_scale=800.0, lat_off=40.62, lat_scale=0.02, long_off=-75.41,
           long_scale=0.03, line_off=150.0, line_scale=150.0, samp_off=100.0, samp_scale=100.0,
           line_num_coeff=[0.002 * i for i in range(20)], line_den_coeff=[1.0] + [0.0001 * i for i in range(1, 20)],
           samp_num_coeff=[-0.003 * i for i in range(20)], samp_den_coeff=[1.0] + [0.0002 * i for i in range(1, 20)],
           err_bias=0.5, err_rand=0.25)


def scene_pixels():
    """4 bands of uint16 values 1..60000 (band 2 has a patch of zeros)."""
    data = np.random.default_rng(7).integers(1, 60001, size=(4, HEIGHT, WIDTH), dtype=np.uint16)
    data[1][ZEROS] = 0
    return data


def write_scene(path, data=None, crs=CRS_UTM, nodata=None, rpcs=RPCS, transform=TRANSFORM):
    data = scene_pixels() if data is None else data
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, rpcs=rpcs) as ds:
        ds.write(data)
        ds.update_tags(ACQUIRED="2022-09-07T14:07:09.64Z", PROVIDER="planet")
        ds.set_band_description(2, "green")
    return str(path)


def write_udm2(path, height=HEIGHT, width=WIDTH, transform=TRANSFORM):
    udm = np.zeros((8, height, width), np.uint8)
    udm[0] = 1
    udm[0][CLOUD] = 0
    udm[5][CLOUD] = 1
    udm[0][SNOW] = 0
    udm[1][SNOW] = 1
    udm[6] = 90
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=8, dtype="uint8",
                       crs=CRS_UTM, transform=transform) as ds:
        ds.write(udm)
    return str(path)


@pytest.fixture
def scene(tmp_path):
    return write_scene(tmp_path / SCENE)


@pytest.fixture
def udm2(tmp_path):
    return write_udm2(tmp_path / UDM2)


def assert_rpcs_match(rpcs, source_path):
    """Every RPC field equals the source file's text and the coefficients written."""
    with rasterio.open(source_path) as src:
        assert rpcs.to_gdal() == src.rpcs.to_gdal()
    for field in ("height_off", "height_scale", "lat_off", "lat_scale", "long_off", "long_scale", "line_off",
                  "line_scale", "samp_off", "samp_scale", "err_bias", "err_rand"):
        assert getattr(rpcs, field) == getattr(RPCS, field), field
    for field in ("line_num_coeff", "line_den_coeff", "samp_num_coeff", "samp_den_coeff"):
        assert getattr(rpcs, field) == pytest.approx(getattr(RPCS, field), rel=1e-14, abs=1e-15), field


def read_band(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_extract_band_2_keeps_pixels_dtype_and_georeferencing(scene, tmp_path):
    dst = extract_band(scene, str(tmp_path / "out" / output_name_for(scene, 2)))
    assert dst == str(tmp_path / "out" / "20220907_140709_64_24a3_3B_AnalyticMS_SR_clip_b2.tif")
    expected = scene_pixels()[1]
    with rasterio.open(dst) as out:
        np.testing.assert_array_equal(out.read(1), expected)
        assert (out.count, out.dtypes[0], out.nodata) == (1, "uint16", 0)
        assert int((out.read_masks(1) == 0).sum()) == 50   # the zeros are nodata
        assert out.crs == CRS_UTM
        assert out.transform == TRANSFORM
        assert out.descriptions == ("band 2 (green)",)
        assert out.tags()["ACQUIRED"] == "2022-09-07T14:07:09.64Z" and out.tags()["PROVIDER"] == "planet"
        assert_rpcs_match(out.rpcs, scene)
        assert (out.rpcs.lat_off, out.rpcs.long_scale, out.rpcs.err_rand) == (40.62, 0.03, 0.25)
        structure = out.tags(ns="IMAGE_STRUCTURE")
        assert (structure["COMPRESSION"], structure["PREDICTOR"]) == ("DEFLATE", "2")
        assert out.block_shapes == [(256, 256)]


def test_band_without_source_description(scene, tmp_path):
    dst = extract_band(scene, str(tmp_path / "b4.tif"), band=4)
    with rasterio.open(dst) as out:
        assert out.descriptions == ("band 4",)
        np.testing.assert_array_equal(out.read(1), scene_pixels()[3])


def test_udm2_masks_cloud_and_keeps_snow_by_default(scene, udm2, tmp_path):
    values = read_band(extract_band(scene, str(tmp_path / "b2.tif"), udm2_path=udm2))
    expected = scene_pixels()[1]
    expected[CLOUD] = 0
    np.testing.assert_array_equal(values, expected)
    assert int((values == 0).sum()) == 200 + 50
    assert values[SNOW].min() >= 1


def test_udm2_masks_snow_when_not_kept(scene, udm2, tmp_path):
    values = read_band(extract_band(scene, str(tmp_path / "b2.tif"), udm2_path=udm2, keep_snow=False))
    expected = scene_pixels()[1]
    expected[CLOUD] = 0
    expected[SNOW] = 0
    np.testing.assert_array_equal(values, expected)
    assert int((values == 0).sum()) == 200 + 200 + 50


def test_declared_source_nodata_is_used_for_masked_pixels(tmp_path, udm2):
    data = scene_pixels()
    data[1][0, 0] = 65535
    src = write_scene(tmp_path / SCENE, data=data, nodata=65535)
    with rasterio.open(extract_band(src, str(tmp_path / "b2.tif"), udm2_path=udm2)) as out:
        values = out.read(1)
        assert out.nodata == 65535
    assert values[0, 0] == 65535
    assert (values[CLOUD] == 65535).all()
    assert (values[ZEROS] == 0).all()          # 0 is data when the source nodata is 65535
    assert int((values == 65535).sum()) == 201


def test_float_scene_gets_nan_nodata_and_float_predictor(tmp_path):
    data = scene_pixels().astype(np.float32) / 100.0
    src = write_scene(tmp_path / "float_3B_x.tif", data=data, rpcs=None)
    with rasterio.open(extract_band(src, str(tmp_path / "b3.tif"), band=3)) as out:
        assert out.dtypes[0] == "float32" and np.isnan(out.nodata)
        assert out.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        np.testing.assert_array_equal(out.read(1), data[2])


def test_default_nodata_per_type():
    assert default_nodata("uint8") == 0 and default_nodata("uint16") == 0
    assert default_nodata("int16") == -32768 and default_nodata("int32") == -2147483648
    assert np.isnan(default_nodata("float32"))


def test_geographic_crs_is_allowed(tmp_path):
    src = write_scene(tmp_path / "geo.tif", crs=CRS.from_epsg(4326), rpcs=None,
                      transform=from_origin(-75.5, 40.7, 3e-5, 3e-5))
    with rasterio.open(extract_band(src, str(tmp_path / "geo_b2.tif"))) as out:
        assert out.crs == CRS.from_epsg(4326)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_rpc_only_l1b_scene_is_allowed(tmp_path):
    data = scene_pixels()
    src = str(tmp_path / "20220907_140709_64_24a3_1B_AnalyticMS.tif")
    with rasterio.open(src, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=4, dtype="uint16",
                       rpcs=RPCS) as ds:
        ds.write(data)
    with rasterio.open(extract_band(src, str(tmp_path / "l1b_b2.tif"))) as out:
        assert out.crs is None
        assert_rpcs_match(out.rpcs, src)
        np.testing.assert_array_equal(out.read(1), data[1])


@pytest.mark.parametrize("band", [0, 5])
def test_band_out_of_range(scene, tmp_path, band):
    with pytest.raises(UserInputError, match=r"has 4 bands; choose 1\.\.4"):
        extract_band(scene, str(tmp_path / "x.tif"), band=band)
    assert not os.path.exists(tmp_path / "x.tif")


def test_udm2_of_another_size_or_grid_is_refused(scene, tmp_path):
    smaller = write_udm2(tmp_path / "small_udm2.tif", height=HEIGHT - 1)
    with pytest.raises(UserInputError, match="same size and grid"):
        extract_band(scene, str(tmp_path / "x.tif"), udm2_path=smaller)
    shifted = write_udm2(tmp_path / "shifted_udm2.tif", transform=from_origin(500003.0, 4500000.0, 3.0, 3.0))
    with pytest.raises(UserInputError, match="same size and grid"):
        extract_band(scene, str(tmp_path / "x.tif"), udm2_path=shifted)
    assert not os.path.exists(tmp_path / "x.tif")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_scene_without_any_georeferencing_is_refused(tmp_path):
    src = str(tmp_path / "plain.tif")
    with rasterio.open(src, "w", driver="GTiff", width=20, height=10, count=2, dtype="uint16") as ds:
        ds.write(np.ones((2, 10, 20), np.uint16))
    with pytest.raises(UserInputError, match="no coordinate reference system"):
        extract_band(src, str(tmp_path / "x.tif"))


def test_unreadable_file_and_output_over_input(tmp_path, scene):
    garbage = tmp_path / "broken.tif"
    garbage.write_bytes(b"not a tiff")
    with pytest.raises(UserInputError, match="Cannot read raster"):
        extract_band(str(garbage), str(tmp_path / "x.tif"))
    with pytest.raises(UserInputError, match="also an input"):
        extract_band(scene, scene)


def test_cancel_after_first_block_leaves_nothing(scene, tmp_path, monkeypatch):
    monkeypatch.setattr(bands, "_BLOCK_PIXELS", 256 * WIDTH)   # 256 + 44 rows -> 2 blocks
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    existing = out_dir / "b2.tif"
    existing.write_bytes(b"previous result")
    calls, percents = [], []

    def cancel_on_second_check():
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        extract_band(scene, str(existing), progress=percents.append, is_canceled=cancel_on_second_check)
    assert percents == [pytest.approx(100.0 * 256 / 300)]
    assert os.listdir(out_dir) == ["b2.tif"]
    assert existing.read_bytes() == b"previous result"


def test_progress_per_block_reaches_100(scene, tmp_path, monkeypatch):
    monkeypatch.setattr(bands, "_BLOCK_PIXELS", 256 * WIDTH)
    percents = []
    values = read_band(extract_band(scene, str(tmp_path / "b2.tif"), progress=percents.append))
    assert percents == [pytest.approx(100.0 * 256 / 300), 100.0]
    np.testing.assert_array_equal(values, scene_pixels()[1])


def test_output_name_for():
    assert output_name_for("/d/20220907_140709_64_24a3_3B_AnalyticMS_SR_clip.tif", 2) == \
        "20220907_140709_64_24a3_3B_AnalyticMS_SR_clip_b2.tif"
    assert output_name_for("scene.TIF", 4) == "scene_b4.tif"


@pytest.mark.parametrize("scene_name,udm2_name", [
    ("20220907_140709_64_24a3_3B_AnalyticMS_SR_clip.tif", "20220907_140709_64_24a3_3B_udm2_clip.tif"),
    ("20220907_140709_64_24a3_3B_AnalyticMS_SR_8b_harmonized_clip.tif", "20220907_140709_64_24a3_3B_udm2_clip.tif"),
    ("20220907_140709_64_24a3_3B_AnalyticMS_SR_harmonized.tif", "20220907_140709_64_24a3_3B_udm2.tif"),
    ("20200101_101010_1014_1B_AnalyticMS.tif", "20200101_101010_1014_1B_udm2.tif"),
])
def test_find_udm2_for_asset_names(tmp_path, scene_name, udm2_name):
    (tmp_path / scene_name).write_bytes(b"")
    assert find_udm2_for(str(tmp_path / scene_name)) is None
    (tmp_path / udm2_name).write_bytes(b"")
    assert find_udm2_for(str(tmp_path / scene_name)) == str(tmp_path / udm2_name)


def test_find_udm2_for_ignores_other_clip_variant_and_foreign_names(tmp_path):
    (tmp_path / "20220907_140709_64_24a3_3B_udm2.tif").write_bytes(b"")
    assert find_udm2_for(str(tmp_path / "20220907_140709_64_24a3_3B_AnalyticMS_SR_clip.tif")) is None
    assert find_udm2_for(str(tmp_path / "s2_B03.tif")) is None
