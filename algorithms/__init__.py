"""Thin Processing adapters: parameters -> core -> outputs."""
from .align_dem_pair import AlignDemToPairAlgorithm
from .aoi_timeline import AoiTimelineAlgorithm
from .build_pairs import BuildPairsAlgorithm
from .coregister_dem import CoregisterDemAlgorithm
from .correlate import CorrelatePairAlgorithm, CorrelatePairsAlgorithm
from .extract_band import ExtractBandAlgorithm
from .itslive_analysis import FluxDivergenceAlgorithm, StrainRatesAlgorithm, TrackParticlesAlgorithm
from .invert_pairs import InvertPairsAlgorithm
from .itslive_data import ItsLiveDownloadAlgorithm, ItsLiveFindCubesAlgorithm, ItsLivePointSeriesAlgorithm
from .orthorectify import OrthorectifyAlgorithm
from .planet import PlanetSearchAlgorithm
from .planet_groups import PlanetGroupsAlgorithm
from .planet_order import PlanetOrderAlgorithm
from .postprocess import PolyfitAlgorithm, VelocityAlgorithm
from .sentinel1 import (S1AnimationAlgorithm, S1GrdToArdAlgorithm, S1MosaicAlgorithm, S1MtSpeckleAlgorithm,
                        S1TimescanAlgorithm, S1TimeSeriesAlgorithm)
from .s1_inventory import S1DownloadAlgorithm, S1InventoryAlgorithm
from .stack_velocity import StackVelocityAlgorithm
from .timelapse import TimelapseAlgorithm

ALGORITHM_CLASSES = (
    PlanetSearchAlgorithm,
    PlanetGroupsAlgorithm,
    PlanetOrderAlgorithm,
    ExtractBandAlgorithm,
    OrthorectifyAlgorithm,
    CoregisterDemAlgorithm,
    AlignDemToPairAlgorithm,
    BuildPairsAlgorithm,
    CorrelatePairAlgorithm,
    CorrelatePairsAlgorithm,
    PolyfitAlgorithm,
    VelocityAlgorithm,
    StackVelocityAlgorithm, AoiTimelineAlgorithm,
    TimelapseAlgorithm,
    InvertPairsAlgorithm,
    StrainRatesAlgorithm, FluxDivergenceAlgorithm, TrackParticlesAlgorithm,
    ItsLiveFindCubesAlgorithm, ItsLiveDownloadAlgorithm, ItsLivePointSeriesAlgorithm,
    S1TimeSeriesAlgorithm, S1MtSpeckleAlgorithm, S1TimescanAlgorithm, S1AnimationAlgorithm, S1MosaicAlgorithm,
    S1GrdToArdAlgorithm, S1InventoryAlgorithm, S1DownloadAlgorithm,
)
