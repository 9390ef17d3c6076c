"""ITS_LIVE glacier velocity: finding, reading and aggregating cubes (REFERENCE §8.1-8.3) and the
analyses on velocity fields: particle tracking (§8.4), strain rates (§8.5), flux divergence (§8.6).

Velocities are m/yr with x = grid east and y = grid north; times are decimal years of 365.25 days.
"""
