"""The structure issue 9 asks for, checked on the source: one reader, one writer, one resampler,
choice lists defined once, three pipelines on shared I/O, no import pointing upward."""
import ast
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sources(*patterns):
    paths = []
    for pattern in patterns:
        paths += glob.glob(os.path.join(REPO, pattern), recursive=True)
    return sorted(p for p in paths if "__pycache__" not in p and "/.venv" not in p)


def _relative(path):
    return os.path.relpath(path, REPO)


CODE = _sources("core/**/*.py", "algorithms/**/*.py", "processing_provider/**/*.py", "tools/*.py", "plugin.py")
#: tools/sarsen_runner.py runs in the sarsen virtual environment (another interpreter) and writes only
#: scratch files in the run's temporary folder; the plugin reads them and writes the outputs itself.
#: core/dependencies.py (the pip installer) writes only pip's constraints file in a temporary folder and
#: must not need rasterio (core.io), which it may be about to install.
OUTSIDE_IO = [p for p in CODE if not _relative(p).startswith(("core/io/", "tools/sarsen_runner.py",
                                                               "core/dependencies.py"))]


def _calls(path):
    """(line, dotted name, call node) of every call in a module."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node.lineno, ast.unparse(node.func), node


def _atomic_blocks(path):
    """Line ranges of ``with atomic_file(...)`` / ``with <set>.file(...)`` blocks (writes allowed there)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
                isinstance(item.context_expr, ast.Call)
                and ast.unparse(item.context_expr.func).split(".")[-1] in ("atomic_file", "file")
                for item in node.items):
            ranges.append((node.lineno, node.end_lineno))
    return ranges


def _mode_argument(call):
    if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant):
        return call.args[1].value
    for keyword in call.keywords:
        if keyword.arg == "mode" and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return "r"


def test_no_module_outside_the_shared_io_opens_a_raster_for_writing_or_reading():
    offenders = []
    for path in OUTSIDE_IO:
        for line, name, call in _calls(path):
            if name in ("rasterio.open", "open_dataset") and _mode_argument(call) != "r":
                offenders.append(f"{_relative(path)}:{line} {name}(..., {_mode_argument(call)!r})")
            elif name == "rasterio.open":
                offenders.append(f"{_relative(path)}:{line} rasterio.open (read with core.io.open_raster)")
    assert not offenders, "\n".join(offenders)


def test_no_module_outside_the_shared_io_writes_files_by_itself():
    writers = ("to_netcdf", "savefig", "np.save", "np.savez", "to_csv", "shutil.copyfile", "os.replace",
               ".write_text", ".write_bytes", ".save")
    offenders = []
    for path in OUTSIDE_IO:
        if _relative(path).startswith(("tools/demo", "tools/make_styles")):
            continue  # demo output and style generation are developer tools, not plugin outputs
        allowed = _atomic_blocks(path)
        for line, name, call in _calls(path):
            if any(first <= line <= last for first, last in allowed):
                continue
            if name.endswith(writers) or (name == "open" and str(_mode_argument(call))[:1] in "wax"):
                offenders.append(f"{_relative(path)}:{line} {name}")
    assert not offenders, "\n".join(offenders)


def test_one_resampler():
    pattern = re.compile(r"\b(WarpedVRT|rasterio\.band|reproject\(|calculate_default_transform)\b")
    offenders = [f"{_relative(p)}:{n}" for p in OUTSIDE_IO
                 for n, text in enumerate(open(p, encoding="utf-8"), start=1) if pattern.search(text)]
    assert not offenders, "\n".join(offenders)


def test_no_transitional_helpers_left():
    pattern = re.compile(r"\b(io\.legacy|atomic_output|set_band_descriptions|prepare_output_folder|"
                         r"write_sidecar_style|style_output)\b")
    offenders = [f"{_relative(p)}:{n}" for p in CODE + _sources("tests/*.py", "bench/*.py")
                 for n, text in enumerate(open(p, encoding="utf-8"), start=1)
                 if pattern.search(text) and not p.endswith("test_io_discipline.py")]
    assert not offenders, "\n".join(offenders)
    assert not os.path.exists(os.path.join(REPO, "core", "io", "legacy.py"))


def test_three_pipelines_on_shared_io():
    packages = sorted(name for name in os.listdir(os.path.join(REPO, "core"))
                      if os.path.isfile(os.path.join(REPO, "core", name, "__init__.py")))
    assert packages == ["dem", "io", "itslive", "offsets", "ortho", "planet", "sentinel1", "series"]
    loose = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "core", "*.py")))
    assert loose == ["__init__.py", "choices.py", "cluster.py", "dates.py", "dependencies.py", "errors.py"]


def test_no_import_points_upward():
    offenders = []
    for path in CODE:
        relative = _relative(path)
        text = open(path, encoding="utf-8").read()
        if relative.startswith("core/"):
            if re.search(r"^\s*(from|import)\s+(\.\.+(algorithms|processing_provider|ui)|algorithms|"
                         r"processing_provider)\b", text, re.M):
                offenders.append(relative)
            if relative.startswith("core/io/") and re.search(r"from \.\.(offsets|itslive|planet|sentinel1|dem)", text):
                offenders.append(relative)
        if relative.startswith("algorithms/") and "processing_provider" in text.replace(
                "``processing_provider/settings.py``", ""):
            offenders.append(relative)
    assert not offenders, "\n".join(offenders)


def test_choice_lists_are_defined_once_in_core():
    offenders = []
    for path in _sources("algorithms/*.py"):
        if path.endswith("base.py"):
            continue
        for line, name, _ in _calls(path):
            if name.endswith("QgsProcessingParameterEnum"):
                offenders.append(f"{_relative(path)}:{line} builds an enum by hand (use enum_parameter)")
        text = open(path, encoding="utf-8").read()
        for literal in ('"lk", "gaussian"', '"mean", "median"', '"float32", "uint8"', '"db", "linear"',
                        '"Y", "M", "D"', '"gtc_sigma0"', '"all", "reference"', '"nominal", "logarithmic"',
                        '"nearest", "linear"', '"VV", "VH"'):
            if literal in text:
                offenders.append(f"{_relative(path)} copies the core list {literal}")
    assert not offenders, "\n".join(offenders)


def test_days_per_year_and_decimal_year_exist_once():
    definitions = []
    for path in CODE:
        for n, text in enumerate(open(path, encoding="utf-8"), start=1):
            if re.match(r"\s*(DAYS_PER_YEAR\s*=|def decimal_year\b|def datetime_from_decimal_year\b)", text):
                definitions.append(f"{_relative(path)}:{n}")
            if re.search(r"\b365\.25\b", text) and not _relative(path) == "core/dates.py" \
                    and not text.lstrip().startswith(("#", '"', "'")) and "365.25-day" not in text \
                    and "365.25 d" not in text:
                definitions.append(f"{_relative(path)}:{n} uses the literal 365.25")
    assert len(definitions) == 3 and all(entry.startswith("core/dates.py:") for entry in definitions), definitions


@pytest.mark.parametrize("module, name", [
    ("core/itslive/download.py", "split_names"), ("core/itslive/cubes.py", "footprint_lonlat_from_grid"),
    ("core/itslive/grids.py", "pixel_to_map"), ("core/sentinel1/naming.py", "acquisition_datetime"),
    ("core/sentinel1/timescan.py", "DB_LEVEL_METRICS")])
def test_dead_code_is_gone(module, name):
    found = bool(re.search(rf"\b{name}\b", open(os.path.join(REPO, module), encoding="utf-8").read()))
    assert not found, f"{name} is still in {module}"
