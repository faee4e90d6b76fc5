"""mtbc: compare music embedding models (MERT-v1, VGGish, ensembles) on a music collection.

Data flow: ``datasets`` (manifest) -> ``audio`` (decode, resample, validate, chunk)
-> ``extractors`` -> ``store`` (embedding cache) -> ``stats`` / ``probe`` / ``ensemble``
-> notebooks -> reports.
"""

__version__ = "0.1.0"

import warnings as _warnings

# huggingface_hub imports tqdm.auto, which warns inside Jupyter when ipywidgets is absent.
# mtbc never shows widget progress bars (notebooks run with progress=False), so the warning
# would only clutter every report.
_warnings.filterwarnings("ignore", message="IProgress not found")
