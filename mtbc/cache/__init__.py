"""Stage 3, the embedding cache: the verified store (:mod:`~mtbc.cache.store`) and the
extraction runner (:mod:`~mtbc.cache.extract`). Its files are written with
:func:`mtbc.files.atomic_write`; the on-disk format is described in ``docs/cache.md``."""

#: The public modules (imported on demand: importing the package stays cheap).
__all__ = ["devices", "extract", "store"]
