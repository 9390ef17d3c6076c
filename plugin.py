"""Plugin object: registers the Processing provider."""
from qgis.core import QgsApplication

from .processing_provider.provider import SurfaceMotionProvider


class SurfaceMotionPlugin:
    """Registers the provider in initProcessing (called by QGIS desktop and qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None  # keep a reference, or Python garbage-collects the provider

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        if self.provider is None:
            self.provider = SurfaceMotionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 (QGIS API name)
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
