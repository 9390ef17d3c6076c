"""Registers the provider settings (defined in :mod:`algorithms.settings`) in Processing's options."""
import contextlib

from ..algorithms.settings import SETTINGS


def register_settings(group: str, icon) -> None:
    """Add the settings to Processing → Options → Providers (called by the provider's load())."""
    from processing.core.ProcessingConfig import ProcessingConfig, Setting

    ProcessingConfig.settingIcons[group] = icon
    for key, description, default, *extra in SETTINGS:
        options = dict(extra[0]) if extra else {}
        if "valuetype" in options:
            options["valuetype"] = getattr(Setting, options["valuetype"])
        ProcessingConfig.addSetting(Setting(group, key, description, default, **options))
    ProcessingConfig.readSettings()


def unregister_settings() -> None:
    """Remove the settings (provider unload); a setting already gone (Processing unloaded first, or a
    second unload) is not an error: QGIS would abort on exit."""
    from processing.core.ProcessingConfig import ProcessingConfig

    for key, *_ in SETTINGS:
        with contextlib.suppress(KeyError):
            ProcessingConfig.removeSetting(key)
