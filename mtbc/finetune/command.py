"""``mtbc finetune`` and ``mtbc predict`` with a fine-tuned model (called from mtbc.cli)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtbc.cache.extract import load_for
from mtbc.cache.store import EmbeddingStore
from mtbc.data.collection import CollectionError, load_collection
from mtbc.files import atomic_write
from mtbc.finetune.model import load_model, model_paths
from mtbc.finetune.run import FinetuneSpec, finetune_collection, labelled, train_final
from mtbc.finetune.train import TrainOptions


def _pct(d: dict[str, float]) -> str:
    return f"{100 * d['value']:.1f}% [{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}]"


def finetune_command(args: Any, options: dict[str, Any]) -> int:
    """Fine-tune ``args.extractor`` on ``args.collection``; print and save the results.

    ``args``: ``collection, extractor, train_layers, lora, epochs, seed, precision, out,
    json, cache``.
    Checkpoints go to ``<out>.checkpoints/``: a rerun after a kill resumes there.
    """
    coll = load_collection(args.collection, progress=False)
    tracks = labelled(coll.tracks)
    if tracks["label"].nunique() < 2:
        raise CollectionError(f"{args.collection}: fine-tuning needs at least 2 labels, found "
                              f"{tracks['label'].nunique()}; give a folder of label folders")
    spec = FinetuneSpec(args.extractor, options, args.train_layers,
                        TrainOptions(max_epochs=args.epochs, seed=args.seed,
                                     precision=getattr(args, "precision", "auto")),
                        lora=getattr(args, "lora", None))
    weights, info = model_paths(args.out)
    work = weights.with_name(weights.stem + ".checkpoints")
    store = EmbeddingStore(args.cache)
    report = finetune_collection(tracks, spec, store=store, workdir=work, progress=True)
    path = train_final(report, tracks, spec, args.out)
    summary = {**report.summary(), "model": str(info), "n_tracks": len(tracks)}
    c = summary["comparison"]
    print(f"{report.extractor.name}, {report.split.details.get('trainable')} trained, "
          f"{len(tracks)} tracks ({report.tuned.split}); {report.precision} on "
          f"{summary['device']}, batch {', '.join(map(str, summary['batch_size']))}")
    print(f"frozen linear probe: {_pct(summary['frozen_accuracy'])}")
    print(f"fine-tuned:          {_pct(summary['finetuned_accuracy'])}")
    print(f"gain: {100 * c['gain']:+.1f} points [{100 * c['ci_low']:+.1f}, "
          f"{100 * c['ci_high']:+.1f}], p = {c['p_value']:.3g} ({c['method']}, "
          f"{c['n_groups']} groups)")
    print(f"model: {path} (+ {weights.name}); classify new songs with "
          f"`mtbc predict {path} SONGS`")
    if args.json:
        text = json.dumps(summary, indent=2, default=str).encode()
        atomic_write(args.json, lambda f: f.write(text))
        print(f"summary: {args.json}")
    return 0


def predict_table(model_path: str | Path, paths: Sequence[Path]) -> pd.DataFrame:
    """Label and class probabilities of each file with a fine-tuned model; a file that
    cannot be read gets its error instead."""
    model = load_model(model_path)
    rows = []
    for path in paths:
        try:
            proba = model.predict_proba([load_for(model.extractor, path)])[0]
        except (ValueError, OSError) as exc:
            rows.append({"path": str(path), "label": None, "error": " ".join(str(exc).split())})
            continue
        rows.append({"path": str(path), "label": model.classes[int(np.argmax(proba))],
                     **{c: float(p) for c, p in zip(model.classes, proba, strict=True)}})
    return pd.DataFrame(rows)
