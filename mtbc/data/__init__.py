"""Stage 1, the data: decode and validate audio (:mod:`~mtbc.data.audio`), build and scan
collections (:mod:`~mtbc.data.collection`), leakage-free splits (:mod:`~mtbc.data.splits`),
the types every loader shares (:mod:`~mtbc.data.core`) and the rendered demo corpus
(:mod:`~mtbc.data.demo`)."""

#: The public modules (imported on demand: importing the package stays cheap).
__all__ = ["audio", "collection", "core", "demo", "demo_render", "duplicates", "mtat",
           "openmic", "splits", "tags"]
