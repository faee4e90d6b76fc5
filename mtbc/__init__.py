"""mtbc: compare music embedding models (MERT-v1, VGGish, musicnn, ensembles) on a collection.

The subpackages follow the data flow:

    mtbc.data        audio decoding, collections and dataset loaders, splits, demo corpus
    mtbc.extractors  one module per model behind one base class
    mtbc.cache       the embedding store and the extraction runner
    mtbc.files       file hashing and atomic writes (the bottom: every stage uses it)
    mtbc.stats       metrics, group-bootstrap intervals, paired tests, descriptive statistics
    mtbc.evaluation  the engine: tasks x systems x folds, probes, ensembles, results, prediction
    mtbc.study       what each numbered notebook computes (one module per notebook)
    mtbc.benchmark   what each model costs: timing, memory, FLOPs (notebook 07, mtbc bench)
    mtbc.claims      the claims audit (notebook 08)
    mtbc.finetune    the top layers of a model trained against its frozen probe (notebook 09)
    mtbc.similarity  similarity search, playlists and the retrieval evaluation (notebook 10)
    mtbc.robustness  degraded audio: stability of embeddings and the probe drop (notebook 11)
    mtbc.zeroshot    classification from text prompts in CLAP's joint space
    mtbc.reports     params schema, notebook execution, HTML and index, plots, tables
    mtbc.pipeline    the main job (``mtbc run``), and mtbc.cli, the command line

``mtbc.load_collection`` loads a collection (folder, CSV, ``gtzan:<root>``, ``mtat:<root>``,
``openmic:<root>``, ``demo``); tagged collections carry ``tags`` / ``tags_negative`` and are
evaluated as the :class:`mtbc.evaluation.Tagging` task (notebook 06, ``docs/tagging.md``).
"""

__version__ = "0.3.0"

import warnings as _warnings

# huggingface_hub imports tqdm.auto, which warns inside Jupyter when ipywidgets is absent.
# mtbc never shows widget progress bars (notebooks run with progress=False), so the warning
# would only clutter every report.
_warnings.filterwarnings("ignore", message="IProgress not found")


def load_collection(source, **options):
    """Load and scan a collection; see :func:`mtbc.data.collection.load_collection`."""
    from mtbc.data.collection import load_collection as _load

    return _load(source, **options)
