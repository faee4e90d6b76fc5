"""Stage 1, the data: decode and validate audio (:mod:`~mtbc.data.audio`), build and scan
collections (:mod:`~mtbc.data.collection`), leakage-free splits (:mod:`~mtbc.data.splits`)
and the rendered demo corpus (:mod:`~mtbc.data.demo`)."""
