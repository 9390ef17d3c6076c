"""Optical offset tracking (PlanetScope L3B chain, REFERENCE §2-6): scene ids and pairs, band
extraction, the correlator, de-ramping and velocities.

Offsets are in reference pixels, dx + right (columns), dy + down (rows), passed as (dx, dy).
"""
