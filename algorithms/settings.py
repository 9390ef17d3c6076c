"""Provider settings (Processing → Options → Providers → Surface Motion Toolbox).

Each entry: (key, description, default). Algorithms read them with :func:`setting`;
a parameter of the same meaning, when given, wins over the setting. The provider
(``processing_provider/settings.py``) registers them; algorithms never import upward.
"""
import os

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SETTINGS = [
    ("SURFACEMOTION_ITSLIVE_STAC_URL", "ITS_LIVE STAC API base URL", "https://stac.itslive.cloud"),
    ("SURFACEMOTION_ITSLIVE_CATALOG_URL", "ITS_LIVE legacy cube catalog (JSON) URL",
     "https://its-live-data.s3.amazonaws.com/datacubes/catalog_v02.json"),
    ("SURFACEMOTION_SARSEN_PYTHON", "Python interpreter of the sarsen virtual environment",
     os.path.join(PLUGIN_DIR, ".venv-sarsen", "bin", "python")),
]
DEFAULTS = {key: default for key, _, default in SETTINGS}


def setting(key: str) -> str:
    """Current value of a provider setting (its default when unset or Processing is absent)."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig

        value = ProcessingConfig.getSetting(key)
    except (ImportError, KeyError):
        value = None
    return value if value not in (None, "") else DEFAULTS[key]
