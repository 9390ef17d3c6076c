"""Sentinel-1 GRD time series without SNAP (REFERENCE §9): names and dates, stacks,
multi-temporal speckle filter, timescan metrics, animation, mosaics and the sarsen ARD engine.

Conventions: backscatter is linear power (γ⁰/σ⁰) or decibels, dB = 10·log10(power);
float outputs use NaN as nodata; integer outputs use 0 as nodata and carry a GDAL
scale/offset so readers see physical values (§9.5).
"""
