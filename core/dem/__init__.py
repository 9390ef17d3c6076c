"""DEM co-registration (Nuth & Kääb 2011), split by role:

* :mod:`.terrain` — slope and aspect of a gridded DEM (Horn 1981), NMAD;
* :mod:`.inputs` — the two DEMs checked (CRS, vertical datum, overlap) and put on one fit grid;
* :mod:`.nuth_kaab` — the iterative fit on arrays of stable ground (no I/O);
* :mod:`.apply` — the shifted DEM and the elevation differences written in blocks;
* :mod:`.report` — the CSV table of the run;
* :mod:`.coregister` — the file-to-file entry point used by ``surfacemotion:coregisterdem``.
"""
