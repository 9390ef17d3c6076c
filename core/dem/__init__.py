"""DEM co-registration (Nuth & Kääb 2011) and disparity-based alignment to an L1B pair, split by role:

* :mod:`.terrain` — slope and aspect of a gridded DEM (Horn 1981), NMAD;
* :mod:`.inputs` — the two DEMs checked (CRS, vertical datum, overlap) and put on one fit grid;
* :mod:`.nuth_kaab` — the iterative fit on arrays of stable ground (no I/O);
* :mod:`.apply` — the shifted DEM and the elevation differences written in blocks;
* :mod:`.report` — the CSV table of the run;
* :mod:`.coregister` — the file-to-file entry point used by ``surfacemotion:coregisterdem``;
* :mod:`.disparity_alignment` — the DEM shift fitted to the residual disparity of two orthos (no I/O);
* :mod:`.pair_alignment` — orthorectify, correlate, fit, repeat: ``surfacemotion:aligndemtopair``.
"""
