"""Orthorectification of raw (L1B) scenes through their RPCs."""
