"""Desktop widgets of the plugin (QGIS GUI): the pixel time-series panel; icons and QML styles."""
