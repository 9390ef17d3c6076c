"""core/series/timelapse.py: remapping with a known fit, date order, the shared stretch, labels, GIF, MP4."""
import os

import numpy as np
import pytest

import timelapse_scenes as ts
from core.errors import UserInputError
from core.io import Grid
from core.series import timelapse
from core.series.timelapse import (ShiftModel, collect_scenes, dates_in_name, make_timelapse, median_model,
                                   pair_models, polyfit_model, read_decimated, remap_secondary)

GRID = Grid(ts.CRS, ts.TRANSFORM, ts.SHAPE[1], ts.SHAPE[0])
#: Interior of the frames: away from the edges the largest shift (3.5 px) uncovers.
INNER = (slice(6, -6), slice(6, -6))


def rms(a, b):
    return float(np.sqrt(np.nanmean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


@pytest.fixture()
def series(tmp_path):
    scenes = ts.write_scenes(str(tmp_path / "scenes"))
    pairs = ts.polyfit_pairs(str(tmp_path / "polyfit"), ts.write_pairs(str(tmp_path / "pairs")))
    return scenes, pairs


def test_dates_from_planetscope_ids_and_plain_dates():
    assert [d.strftime("%Y-%m-%d %H:%M") for d in dates_in_name("20210301_151005_00_24a0_3B_b3.tif")] == \
        ["2021-03-01 15:10"]
    assert [d.strftime("%Y-%m-%d") for d in dates_in_name("/x/S2_2020-07-15_B04.tif")] == ["2020-07-15"]
    assert [d.strftime("%Y%m%d") for d in dates_in_name("pair_20200715_20210112.tif")] == ["20200715", "20210112"]
    assert dates_in_name("scene_20201340.tif") == []  # month 13: not a date


def test_scenes_are_sorted_by_date(series):
    scenes, _ = series
    ordered, grid = collect_scenes(scenes, 1)
    assert [s.day for s in ordered] == [w.strftime("%Y-%m-%d") for w in ts.WHEN]
    assert grid == GRID


def test_polyfit_model_evaluates_the_fitted_ramp_at_reference_pixels(series):
    """The pairs are on a 4-px grid; the model at full-resolution pixels equals the known ramp."""
    _, pairs = series
    rows, cols = np.mgrid[0:ts.SHAPE[0], 0:ts.SHAPE[1]].astype(float)
    for k, path in enumerate(pairs, start=1):
        dx, dy = polyfit_model(path).offsets(cols, rows, GRID)
        true_dx, true_dy = ts.ramp(k, cols, rows)
        assert np.abs(dx - true_dx).max() < 0.02 and np.abs(dy - true_dy).max() < 0.02, k


def test_remapping_with_the_known_fit_gives_back_the_reference(series):
    scenes, pairs = series
    ordered, grid = collect_scenes(scenes, 1)
    models = pair_models(ordered, pairs, "polyfit")
    reference = read_decimated(ordered[0].path, 1, ts.SHAPE)
    for k, scene in enumerate(ordered[1:], start=1):
        raw = read_decimated(scene.path, 1, ts.SHAPE)
        remapped = remap_secondary(raw, models[scene.day], grid)
        before, after = rms(raw[INNER], reference[INNER]), rms(remapped[INNER], reference[INNER])
        # pattern amplitude ~360 counts RMS; bilinear interpolation error of the smooth pattern < 2 counts
        assert after < 2.0 and before > 60.0, (k, before, after)


def test_median_model_is_the_median_offset(tmp_path):
    pairs = ts.write_pairs(str(tmp_path), count=3, noise=0.0)
    rows, cols = np.mgrid[0:24, 0:32] * 4 + 1.5
    model = median_model(pairs[1])
    true_dx, true_dy = ts.ramp(2, cols, rows)
    assert model.coefficients_dx[0] == pytest.approx(np.median(true_dx), abs=1e-5)
    assert model.coefficients_dy[0] == pytest.approx(np.median(true_dy), abs=1e-5)


def test_remap_of_a_decimated_frame_uses_full_resolution_pixels():
    """A 2x decimated frame shifted by 4 full-resolution pixels moves by 2 frame pixels."""
    image = np.tile(np.arange(64, dtype=np.float32), (32, 1))
    remapped = remap_secondary(image, ShiftModel((4.0,), (0.0,)), Grid(ts.CRS, ts.TRANSFORM, 128, 64))
    np.testing.assert_allclose(remapped[:, :60], image[:, 2:62], atol=1e-5)
    assert np.isnan(remapped[:, -1]).all()


def test_gif_frames_order_stretch_labels_and_duration(series, tmp_path):
    scenes, pairs = series
    gif = str(tmp_path / "out" / "lapse.gif")
    result = make_timelapse(scenes, gif, correction="polyfit", disparities=pairs, frame_ms=450, mp4=False)
    frames, durations = ts.gif_frames(gif)
    assert frames.shape == (6,) + ts.SHAPE + (3,)
    assert durations == [450] * 6
    assert result["dates"] == [w.strftime("%Y-%m-%d") for w in ts.WHEN]
    # shared 2-98 % stretch of all frames: the limits are those of the reference pattern
    low, high = result["limits"]
    values = ts.ground(*np.meshgrid(np.arange(128.0), np.arange(96.0)))
    assert low == pytest.approx(np.percentile(values, 2), rel=0.01)
    assert high == pytest.approx(np.percentile(values, 98), rel=0.01)
    grey = frames[..., 0].astype(float)
    x0, y0, x1, y1 = result["label_box"]
    body = np.ones(ts.SHAPE, bool)
    body[:y1 + 1, :x1 + 1] = False
    body[:6], body[-6:], body[:, :6], body[:, -6:] = False, False, False, False
    for k in range(1, 6):
        assert rms(grey[k][body], grey[0][body]) < 3.0, k  # co-registered: same picture (grey levels)
    # the date is burnt in: the label box differs from the unlabelled picture, and between dates
    expected = timelapse.stretch(read_decimated(collect_scenes(scenes, 1)[0][0].path, 1, ts.SHAPE),
                                 result["limits"])
    box = (slice(y0, y1), slice(x0, x1))
    assert np.mean(np.abs(grey[0][box] - expected[box]) > 40) > 0.3
    assert (grey[0][box] != grey[1][box]).any()
    assert (grey[0][box] == 0).mean() > 0.5 and (grey[0][box] == 255).any()  # white text on black


def test_without_correction_the_frames_move(series, tmp_path):
    scenes, _ = series
    gif = str(tmp_path / "raw.gif")
    make_timelapse(scenes, gif, show_dates=False, mp4=False)
    grey = ts.gif_frames(gif)[0][..., 0].astype(float)
    assert rms(grey[4][INNER], grey[0][INNER]) > 30.0


def test_velocity_overlay_colours(series, tmp_path):
    scenes, _ = series
    speed = np.full((24, 32), np.nan, np.float32)
    speed[12:, 16:] = 20.0
    velocity = ts.write(str(tmp_path / "v" / "velocity.tif"), np.stack([speed] * 4),
                        transform=ts.TRANSFORM * ts.TRANSFORM.scale(4),
                        descriptions=("speed (m/yr)", "azimuth (degrees)", "v_east (m/yr)", "v_north (m/yr)"))
    gif = str(tmp_path / "overlay.gif")
    result = make_timelapse(scenes, gif, velocity=velocity, velocity_max=20.0, opacity=1.0, show_dates=False,
                            mp4=False)
    assert result["velocity_max"] == 20.0
    frames = ts.gif_frames(gif)[0]
    np.testing.assert_allclose(frames[3, 70, 100], timelapse.VELOCITY_RAMP[-1][1], atol=6)  # red at the maximum
    assert abs(int(frames[3, 20, 20, 0]) - int(frames[3, 20, 20, 2])) < 4  # grey outside


def test_mp4_not_written_without_ffmpeg(series, tmp_path, monkeypatch):
    scenes, _ = series
    gif = str(tmp_path / "a" / "lapse.gif")
    monkeypatch.setattr(timelapse, "ffmpeg_path", lambda: None)
    result = make_timelapse(scenes, gif)
    assert result["path_mp4"] is None
    assert result["notes"] == ["ffmpeg is not on PATH (nor the imageio-ffmpeg package installed): no MP4 was "
                               "written (the GIF was)."]
    assert sorted(os.listdir(tmp_path / "a")) == ["lapse.gif"]


def test_ffmpeg_found_on_path_first_then_in_imageio_ffmpeg(tmp_path, monkeypatch):
    import imageio_ffmpeg

    monkeypatch.setenv("PATH", str(tmp_path))
    assert timelapse.ffmpeg_path() == imageio_ffmpeg.get_ffmpeg_exe()
    stand_in = tmp_path / "ffmpeg"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    assert timelapse.ffmpeg_path() == str(stand_in)


def _decode_mp4(ffmpeg, path, shape):
    """The RGB frames of an MP4 (ffmpeg to raw rgb24)."""
    import subprocess

    done = subprocess.run([ffmpeg, "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True)
    height, width = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, height, width, 3)[:, :shape[0], :shape[1]]


def test_mp4_of_a_real_ffmpeg_holds_the_gif_frames(series, tmp_path):
    """A real ffmpeg (imageio-ffmpeg's static build, a test requirement) encodes H.264: decoded back, the MP4
    has the GIF's frames, in order, within the codec's loss."""
    scenes, _ = series
    ffmpeg = timelapse.ffmpeg_path()
    assert ffmpeg is not None
    gif = str(tmp_path / "real" / "lapse.gif")
    result = make_timelapse(scenes, gif, frame_ms=500)
    assert result["notes"] == [] and result["path_mp4"] == gif[:-4] + ".mp4"
    frames = ts.gif_frames(gif)[0]
    video = _decode_mp4(ffmpeg, result["path_mp4"], frames.shape[1:3])
    assert video.shape == frames.shape                      # 6 frames of the GIF's size (odd sizes padded)
    errors = [np.abs(video[k].astype(float) - frames[k]).mean() for k in range(len(frames))]
    assert max(errors) < 6.0, errors                        # grey levels of 0-255: H.264 at its default quality
    # in order: each decoded frame is closest to its own GIF frame
    for k in range(len(frames)):
        distances = [np.abs(video[k].astype(float) - frames[m]).mean() for m in range(len(frames))]
        assert int(np.argmin(distances)) == k
    assert sorted(os.listdir(tmp_path / "real")) == ["lapse.gif", "lapse.mp4"]


def stand_in_ffmpeg(tmp_path, monkeypatch, script):
    """An executable ``bin/ffmpeg`` running the shell ``script``, used as the ffmpeg on PATH."""
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n" + script + "\n")
    fake.chmod(0o755)
    monkeypatch.setattr(timelapse, "ffmpeg_path", lambda: str(fake))


def test_mp4_command_and_atomic_write_with_a_stand_in_ffmpeg(series, tmp_path, monkeypatch):
    """ffmpeg is replaced by a script that records its arguments and the PNG frames it was given."""
    scenes, _ = series
    # lists the frame folder (argument 7, after -i) and echoes the command into the output (the last argument)
    stand_in_ffmpeg(tmp_path, monkeypatch, 'for last; do :; done\nls "$(dirname "$7")" > "$last"\necho "$@" >> "$last"')
    gif = str(tmp_path / "m" / "lapse.gif")
    result = make_timelapse(scenes, gif, frame_ms=500)
    assert result["path_mp4"] == gif[:-4] + ".mp4"
    lines = open(result["path_mp4"]).read().splitlines()
    assert lines[:6] == [f"frame_{k:05d}.png" for k in range(6)]
    assert "-framerate 2 " in lines[6] and "-c:v libx264 -pix_fmt yuv420p" in lines[6]
    assert sorted(os.listdir(tmp_path / "m")) == ["lapse.gif", "lapse.mp4"]  # no frame folder left


def test_a_failing_ffmpeg_leaves_nothing(series, tmp_path, monkeypatch):
    scenes, _ = series
    stand_in_ffmpeg(tmp_path, monkeypatch, "echo 'Unknown encoder libx264' >&2\nexit 1")
    with pytest.raises(UserInputError, match=r"Writing .*lapse.mp4. failed: ffmpeg failed: Unknown encoder libx264"):
        make_timelapse(scenes, str(tmp_path / "m" / "lapse.gif"))
    assert not (tmp_path / "m").exists() or os.listdir(tmp_path / "m") == []


def test_frames_are_decimated_to_the_maximum_size(series, tmp_path):
    scenes, _ = series
    result = make_timelapse(scenes, str(tmp_path / "small.gif"), max_size=64, mp4=False)
    assert result["size"] == (48, 64)
    assert ts.gif_frames(str(tmp_path / "small.gif"))[0].shape == (6, 48, 64, 3)


@pytest.mark.parametrize("case, fragment", [
    ("one scene", "at least two scenes"),
    ("grids differ", "is not on the grid of"),
    ("no date", "No acquisition date in the name"),
    ("missing pair", "No pair with the reference"),
    ("not the reference", "has its reference on"),
])
def test_bad_inputs(series, tmp_path, case, fragment):
    scenes, pairs = series
    kwargs = {}
    if case == "one scene":
        scenes = scenes[:1]
    elif case == "grids differ":
        scenes = scenes + [ts.write(str(tmp_path / "x" / "20230101_b3.tif"), ts.scene_image(0)[None, :90])]
    elif case == "no date":
        scenes = scenes + [ts.write(str(tmp_path / "x" / "scene.tif"), ts.scene_image(0)[None])]
    elif case == "missing pair":
        kwargs = {"correction": "polyfit", "disparities": pairs[1:]}
    else:
        kwargs = {"correction": "median", "disparities": pairs}
        scenes = [s for s in scenes if ts.scene_name(0) not in s]
    with pytest.raises(UserInputError, match=fragment):
        make_timelapse(scenes, str(tmp_path / "out" / "bad.gif"), mp4=False, **kwargs)
    assert not (tmp_path / "out").exists()
