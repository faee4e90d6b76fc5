"""mtbc: compare music embedding models (MERT-v1, VGGish, ensembles) on a music collection.

Data flow: ``datasets`` (manifest) -> ``audio`` (decode, resample, validate, chunk)
-> ``extractors`` -> ``store`` (embedding cache) -> ``stats`` / ``probe`` / ``ensemble``
-> notebooks -> reports.
"""

__version__ = "0.1.0"
