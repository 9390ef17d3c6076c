"""QML styles shipped with the plugin (``ui/styles/<name>.qml``), written as sidecars of outputs."""
from __future__ import annotations

import os

from ..errors import UserInputError

STYLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "ui", "styles")


def style_path(name: str) -> str:
    """Path of the style ``name``; a missing style is a packaging error, reported clearly."""
    path = os.path.join(STYLES_DIR, name + ".qml")
    if not os.path.isfile(path):
        raise UserInputError(f"The style '{name}' is missing from {STYLES_DIR}; reinstall the plugin.")
    return path
