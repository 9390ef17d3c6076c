"""Print pip constraints pinning the installed libraries QGIS is built against (numpy, GDAL, …).

Used by `make venv`: pip may add packages Debian lacks but must never replace these (mixed
numpy/GDAL builds crash QGIS). The list and the rule are the plugin installer's
(:func:`core.dependencies.constraints`), so both pin the same packages.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.dependencies import constraints  # noqa: E402


def main() -> None:
    print("\n".join(constraints()))


if __name__ == "__main__":
    main()
