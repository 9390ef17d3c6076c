"""RPC orthorectification of raw (L1B) scenes onto a DEM with its vertical datum handled.

* :mod:`.rpc`: reading RPCs (TIFF RPC domain, ``_RPC.TXT``, XML) and the RPC00B model.
* :mod:`.vdatum`: vertical datums (ellipsoid, EGM96, EGM2008, from the CRS) and geoid grids.
* :mod:`.aoi`: AOI, footprint and raw source window geometry.
* :mod:`.orthorectify`: :func:`job_grid` and :func:`orthorectify_scene`.
"""
