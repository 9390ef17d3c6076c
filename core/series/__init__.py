"""Many pairs to one story (REFERENCE §6.3–6.5): velocity stacks, AOI timelines, the inversion of a pair
network into velocity time series, timelapses. Split by role; see each module's docstring."""
