"""Stage 3, the embedding cache: file hashing and atomic writes (:mod:`~mtbc.cache.files`),
the verified store (:mod:`~mtbc.cache.store`) and the extraction runner
(:mod:`~mtbc.cache.extract`). The on-disk format is described in ``docs/cache.md``."""
