"""Print pip constraints pinning the Debian-packaged libraries QGIS is built against.

Used by `make venv`: pip may add packages Debian lacks but must never replace
these (mixed numpy/GDAL builds crash QGIS).
"""
from importlib import metadata

PINNED = ("numpy", "GDAL", "scipy", "pandas", "rasterio", "pytest", "matplotlib", "affine",
          "scikit-image", "shapely", "pyproj", "Pillow", "opencv")


def main() -> None:
    for name in PINNED:
        try:
            print(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue


if __name__ == "__main__":
    main()
