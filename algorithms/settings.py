"""Provider settings (Processing → Options → Providers → Surface Motion Toolbox).

Each entry: (key, description, default[, options]); ``options`` (a dict) holds the extra
``Setting`` arguments (``valuetype`` by name, ``options`` of a selection). Algorithms read them
with :func:`setting`; a parameter of the same meaning, when given, wins over the setting. The
provider (``processing_provider/settings.py``) registers them; algorithms never import upward.
"""
import os

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Choices of SURFACEMOTION_DEPENDENCIES_AT_STARTUP (stored by index).
STARTUP_CHOICES = ["Ask in the message bar (no download without a click)", "Install them without asking",
                   "Do nothing"]

SETTINGS = [
    ("SURFACEMOTION_ITSLIVE_STAC_URL", "ITS_LIVE STAC API base URL", "https://stac.itslive.cloud"),
    ("SURFACEMOTION_ITSLIVE_CATALOG_URL", "ITS_LIVE legacy cube catalog (JSON) URL",
     "https://its-live-data.s3.amazonaws.com/datacubes/catalog_v02.json"),
    ("SURFACEMOTION_SARSEN_PYTHON", "Python interpreter of the sarsen virtual environment",
     os.path.join(PLUGIN_DIR, ".venv-sarsen", "bin", "python")),
    ("SURFACEMOTION_DEPENDENCIES_FOLDER",
     "Python packages folder (empty: <profile>/python/dependencies; read at start-up)", "",
     {"valuetype": "FOLDER"}),  # read by __init__.dependencies_folder
    ("SURFACEMOTION_DEPENDENCIES_AT_STARTUP",
     "Missing Python packages (requirements.txt) at QGIS start-up", STARTUP_CHOICES[0],
     {"valuetype": "SELECTION", "options": STARTUP_CHOICES}),
    # Planet: a setting is stored as plain text in QGIS's settings file; the 'Planet API key' parameter
    # (a QGIS authentication configuration, encrypted by the master password) is preferred.
    ("SURFACEMOTION_PLANET_API_KEY",
     "Planet API key (plain text: prefer a QGIS authentication configuration; empty: PL_API_KEY)", ""),
    ("SURFACEMOTION_PLANET_URL", "Planet API base URL", "https://api.planet.com"),
    # Sentinel-1 inventory and download (mirrors of the same APIs work too).
    ("SURFACEMOTION_S1_STAC_URL", "Sentinel-1 STAC API URL", "https://stac.dataspace.copernicus.eu/v1"),
    ("SURFACEMOTION_S1_ASF_URL", "Sentinel-1 ASF search API URL",
     "https://api.daac.asf.alaska.edu/services/search/param"),
    ("SURFACEMOTION_S1_TOKEN_URL", "Sentinel-1 OAuth2 token URL (Copernicus Data Space)",
     "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"),
    # Orthorectification: folder holding PROJ geoid grids (us_nga_egm08_25.tif for EGM2008 DEMs), searched
    # before PROJ's own search path.
    ("SURFACEMOTION_GEOID_FOLDER",
     "Geoid grids folder (us_nga_egm08_25.tif from cdn.proj.org; empty: PROJ's search path)", "",
     {"valuetype": "FOLDER"}),
]
DEFAULTS = {entry[0]: entry[2] for entry in SETTINGS}


def setting(key: str) -> str:
    """Current value of a provider setting (its default when unset or Processing is absent);
    selections are returned as their text."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig

        value = ProcessingConfig.getSetting(key, readable=True)
    except (ImportError, KeyError):
        value = None
    return value if value not in (None, "") else DEFAULTS[key]
