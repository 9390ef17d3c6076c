# Surface Motion Toolbox — set-up, demo and tests on Debian bookworm (QGIS 3.22 LTR from apt).
# `make demo` and `make test` install what they need themselves.

SHELL := /bin/bash
PY_SYSTEM := /usr/bin/python3
BUILD := $(CURDIR)/.build
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PLUGIN_DIR := $(BUILD)/plugins
APT_PACKAGES := qgis qgis-providers python3-qgis python3-numpy python3-scipy python3-pandas \
	python3-rasterio python3-gdal python3-pytest python3-pip python3-venv python3-matplotlib \
	python3-skimage python3-opencv python3-xarray python3-zarr python3-fsspec python3-netcdf4 \
	python3-dask python3-distributed python3-aiohttp python3-requests python3-pil python3-shapely \
	python3-pyproj python3-geopandas python3-numba xauth xvfb
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/runtime-$(shell id -u)
# keep GDAL from writing .aux.xml statistics next to the sample and test data
export GDAL_PAM_ENABLED ?= NO

.PHONY: all deps system-deps venv plugin sarsen test demo sample styles bench bench-s1 clean package

all: deps

deps: system-deps venv plugin sarsen

# Debian packages: QGIS, its Python bindings and the scientific stack QGIS is built against.
system-deps: $(BUILD)/system-deps.ok
$(BUILD)/system-deps.ok:
	@mkdir -p $(BUILD)
	@if ! command -v qgis_process.bin >/dev/null || ! command -v xvfb-run >/dev/null || ! $(PY_SYSTEM) -c "import qgis.core, rasterio, scipy, pandas, skimage, cv2, pytest, matplotlib, xarray, zarr, fsspec, netCDF4, dask.distributed, aiohttp, geopandas" 2>/dev/null; then \
		echo "Installing Debian packages: $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi
	@touch $@

# Virtual environment that sees Debian's packages; pip adds only what Debian lacks and a
# constraints file pins Debian's numpy/GDAL/... so pip can never replace them.
venv: $(VENV)/.ok
$(VENV)/.ok: requirements-test.txt requirements-plugin.txt requirements.txt tools/debian_constraints.py $(BUILD)/system-deps.ok
	$(PY_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY_SYSTEM) tools/debian_constraints.py > $(BUILD)/constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check -c $(BUILD)/constraints.txt -r requirements-test.txt -r requirements-plugin.txt
	@touch $@

# QGIS finds the plugin as `surface_motion` through QGIS_PLUGINPATH.
plugin:
	@mkdir -p $(PLUGIN_DIR)
	@ln -sfn $(CURDIR) $(PLUGIN_DIR)/surface_motion

test: deps
	SM_MAKE_TEST=1 QGIS_PLUGINPATH=$(PLUGIN_DIR) $(PY) -m pytest -p no:cacheprovider tests

demo: deps
	QGIS_PLUGINPATH=$(PLUGIN_DIR) $(PY) tools/demo.py --plugin-path $(PLUGIN_DIR) --out $(CURDIR)/demo_output
	QGIS_PLUGINPATH=$(PLUGIN_DIR) $(PY) tools/demo_itslive.py --plugin-path $(PLUGIN_DIR) --out $(CURDIR)/demo_output/itslive

# Release ZIP for Install from ZIP / the plugin repository: dist/surface_motion-<version>.zip
# (runtime files only; the list is in tools/package.py).
package: system-deps
	$(PY_SYSTEM) tools/package.py --out $(CURDIR)/dist

# Regenerate the embedded sample (needs ../shared/data/sentinel2).
sample: system-deps
	$(PY_SYSTEM) tools/make_sample.py

styles: system-deps
	$(PY_SYSTEM) tools/make_styles.py

# Correlation engine against its peers (issue 3); bench-s1: Sentinel-1 timescan of a 100 x 5000 x 5000 stack (7.5 GB in /tmp).
bench: deps
	$(PY) bench/run.py

clean:
	rm -rf $(BUILD) $(VENV) $(SARSEN_VENV) demo_output dist

# Optional sarsen engine for surfacemotion:s1grdtoard (Sentinel-1 GRD -> GTC/RTC without SNAP).
# sarsen needs numpy>=1.26, pandas>=2.2, scipy>=1.13 (newer than Debian's), so it gets its own
# isolated venv (no system site packages); the plugin runs it as a subprocess
# (provider setting SURFACEMOTION_SARSEN_PYTHON, default .venv-sarsen/bin/python).
SARSEN_VENV := $(CURDIR)/.venv-sarsen
sarsen: $(SARSEN_VENV)/.ok
$(SARSEN_VENV)/.ok:
	$(PY_SYSTEM) -m venv $(SARSEN_VENV)
	$(SARSEN_VENV)/bin/python -m pip install -q --disable-pip-version-check "sarsen>=0.9.6,<0.10" rioxarray
	$(SARSEN_VENV)/bin/python -c "import sarsen, rioxarray; print('sarsen', sarsen.__version__)"
	@touch $@

bench-s1: deps
	$(PY) bench/s1_timescan.py
