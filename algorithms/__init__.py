"""Thin Processing adapters: parameters -> core -> outputs."""
from .build_pairs import BuildPairsAlgorithm
from .correlate import CorrelatePairAlgorithm, CorrelatePairsAlgorithm
from .extract_band import ExtractBandAlgorithm
from .postprocess import PolyfitAlgorithm, VelocityAlgorithm

ALGORITHM_CLASSES = (
    ExtractBandAlgorithm,
    BuildPairsAlgorithm,
    CorrelatePairAlgorithm,
    CorrelatePairsAlgorithm,
    PolyfitAlgorithm,
    VelocityAlgorithm,
)
