"""The ``mtbc`` command line: ``mtbc <command> --help`` for each command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def _options(pairs: list[str]) -> dict:
    """``["model=m-a-p/MERT-v1-95M", "chunk_seconds=10"]`` -> typed dict (YAML scalars)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"mtbc: option {pair!r} is not KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SystemExit(f"mtbc: --shard takes i/n (e.g. 0/4), not {text!r}") from None
    return i, n


def _print_table(df, title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(df.to_string(index=False) if len(df) else "(none)")


def cmd_demo(args) -> int:
    from mtbc.data.demo import build_demo

    manifest = build_demo(args.out, seed=args.seed, n_per_class=args.per_class,
                          clip_seconds=args.seconds, force=args.force)
    print(f"demo corpus: {manifest}")
    return 0


def cmd_fixtures(args) -> int:
    from mtbc.extractors.fixtures import make_mert_snapshot, make_vggish_weights

    out = args.out
    mert = make_mert_snapshot(out / "mert-tiny", variant="330m", tiny=True,
                              weights_format="safetensors")
    weights, pca = make_vggish_weights(out / "vggish")
    print(f"random-weight fixtures (NOT real models; reports made with them say so):\n"
          f"  MERT (tiny, hub layout): {mert}\n  VGGish weights: {weights}\n"
          f"  VGGish PCA: {pca}\nrun the whole study on them: "
          f"mtbc run --params params/fixtures.yaml")
    return 0


def cmd_scan(args) -> int:
    from mtbc.data.collection import load_collection

    coll = load_collection(args.collection, kind=args.kind, min_duration=args.min_duration)
    print(f"{coll.name} ({coll.source}): {len(coll)} tracks, {len(coll.skipped)} skipped")
    _print_table(coll.summary().round(2).reset_index(), "per label (durations in s):")
    if coll.tracks["split"].notna().any():
        _print_table(coll.tracks.groupby("split").size().rename("tracks").reset_index(), "splits:")
    _print_table(coll.skipped[["path", "reason"]], "skipped:")
    if args.out:
        coll.tracks.to_csv(args.out, index=False)
        print(f"\ntracks table written to {args.out}")
    return 0


def cmd_extract(args) -> int:
    from mtbc.cache.extract import extract_collection
    from mtbc.cache.store import EmbeddingStore
    from mtbc.data.collection import load_collection
    from mtbc.extractors import get_extractor

    if args.devices:  # one subprocess per device, one shared cache (mtbc.cache.devices)
        from mtbc.cache.devices import parse_devices, run_on_devices

        try:
            devices = parse_devices(args.devices)
        except ValueError as exc:
            raise SystemExit(f"mtbc extract: {exc}") from None
        return run_on_devices(args.argv[1:], devices, _shard(args.shard))
    coll = load_collection(args.collection, kind=args.kind)
    store = EmbeddingStore(args.cache)
    status = 0
    options = _options(args.option)
    if args.device:
        options.setdefault("device", args.device)
    for name in args.extractor:
        extractor = get_extractor(name, **options)
        report = extract_collection(coll.tracks, extractor, store, batch_tracks=args.batch,
                                    shard=_shard(args.shard))
        print(report)
        if len(report.failed):
            _print_table(report.failed[["path", "reason"]], "failed:")
            status = 1 if not report.extracted and not report.cached else status
    if len(coll.skipped):
        _print_table(coll.skipped[["path", "reason"]], "skipped while scanning:")
    return status


def cmd_cache(args) -> int:
    from mtbc.cache.store import EmbeddingStore

    store = EmbeddingStore(args.cache)
    listing = store.list()
    if not len(listing):
        print(f"{store.root}: empty")
        return 0
    summary = (listing.groupby("fingerprint")
               .agg(tracks=("content_hash", "size"), segments=("n_segments", "sum"),
                    layers=("n_layers", "first"), dim=("dim", "first"),
                    MiB=("bytes", lambda b: round(b.sum() / 2**20, 1))).reset_index())
    summary["model"] = [store.read_info(fp).get("model", store.read_info(fp).get("extractor"))
                        for fp in summary["fingerprint"]]
    _print_table(summary, f"{store.root}:")
    return 0


def cmd_predict(args) -> int:
    from mtbc.analysis.predict import predict_files
    from mtbc.cache.store import EmbeddingStore

    paths = []
    for p in map(Path, args.files):
        paths += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    try:
        table = predict_files(args.model, paths, store=EmbeddingStore(args.cache),
                              extractor_options=_options(args.option) or None)
    except ValueError as exc:  # not a model file, or a model/extractor mismatch
        print(f"mtbc predict: error: {exc}", file=sys.stderr)
        return 2
    shown = table.drop(columns=["content_hash"], errors="ignore").round(3)
    if "error" in shown:
        shown["error"] = shown["error"].fillna("")
    _print_table(shown.fillna("-"))
    return 0


def cmd_bench(args) -> int:
    from mtbc import bench

    return bench.main(models=args.models, device=args.device, quick=args.quick,
                      json_path=args.json, dtypes=args.dtypes, batch_sizes=args.batch_sizes,
                      clip_seconds=args.clip_seconds, repeats=args.repeats)


def cmd_run(args) -> int:
    from mtbc.pipeline import run

    index = run(args.params, notebooks_dir=args.notebooks, strict=args.strict or None)
    print(f"\nreports: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtbc", description="Compare music embedding models on a music collection.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("demo", help="render the demo corpus (offline, deterministic)",
                       description="Render the demo corpus into data/demo/ (skipped when built).")
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--per-class", type=int, default=12, help="clips per class (default 12)")
    p.add_argument("--seconds", type=float, default=15.0, help="clip length in s (default 15)")
    p.add_argument("--force", action="store_true", help="rebuild even if already built")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fixtures", help="write random-weight test models (offline trial runs)",
                       description="Write a tiny MERT snapshot and VGGish files in the upstream "
                                   "formats with RANDOM weights, to try the pipeline offline. "
                                   "Numbers made with them are not model results.")
    p.add_argument("--out", type=Path, default=Path("data/fixtures"),
                   help="output folder (default data/fixtures)")
    p.set_defaults(func=cmd_fixtures)

    coll_help = "'demo', a CSV manifest, a GTZAN root or a folder of label folders"
    kinds = ["auto", "demo", "csv", "gtzan", "folder"]
    p = sub.add_parser("scan", help="check a collection: labels, durations, skipped files",
                       description="Decode every file once; list per-label counts and durations "
                                   "and the files skipped with their reasons.")
    p.add_argument("collection", help=coll_help)
    p.add_argument("--kind", choices=kinds, default="auto", help="collection layout")
    p.add_argument("--min-duration", type=float, default=0.0, help="skip shorter files (s)")
    p.add_argument("--out", type=Path, help="write the tracks table to this CSV")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("extract", help="extract embeddings into the cache",
                       description="Embed every track not yet cached. Repeat -o for options, "
                                   "e.g. -o model=m-a-p/MERT-v1-95M -o chunk_seconds=30.")
    p.add_argument("collection", help=coll_help)
    p.add_argument("--extractor", "-e", action="append", required=True,
                   help="mert, vggish, mfcc or musicnn (repeatable)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="extractor option (value parsed as YAML)")
    p.add_argument("--kind", choices=kinds, default="auto", help="collection layout")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.add_argument("--batch", type=int, default=8, help="tracks per model batch (default 8)")
    p.add_argument("--shard", help="i/n: only shard i of n (split work across machines)")
    p.add_argument("--device", default=None, help="torch device for the models (cpu, cuda:1, "
                                                  "mps; default: the extractor's auto)")
    p.add_argument("--devices", default=None, metavar="LIST",
                   help="cuda:0,cuda:1,...: one process per device sharing the cache")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("cache", help="list what the embedding cache holds")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("predict", help="classify new songs with a trained model file",
                       description="Extract what is missing and print the label and class "
                                   "probabilities of each file.")
    p.add_argument("model", type=Path, help="a model file saved by notebook 04 / mtbc.analysis.predict")
    p.add_argument("files", nargs="+", help="audio files or folders")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="override an extractor option recorded in the model (e.g. "
                        "model=<local folder> offline); outputs must not change")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="throughput and TFLOP/s against the same-run matmul peak")
    p.add_argument("--models", default="mert-95m,mert-330m,vggish,musicnn,mfcc,probe,store",
                   help="comma-separated: mert-95m, mert-330m, vggish, musicnn, mfcc, probe, "
                        "store")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--quick", action="store_true", help="batch 1 only, one repeat")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="write every figure as rows (docs/compute.md) to FILE")
    p.add_argument("--dtypes", default="auto,float32",
                   help="precisions to time (default auto,float32: the speed-up shows)")
    p.add_argument("--batch-sizes", default=None, help="clips per batch, e.g. 1,8,16")
    p.add_argument("--clip-seconds", type=float, default=30.0, help="clip length (default 30)")
    p.add_argument("--repeats", type=int, default=None, help="best of N (default 2; quick 1)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="the whole study: corpus, embeddings, notebooks, HTML reports",
                       description="Build the demo corpus if needed, extract with the configured "
                                   "extractors, execute the notebooks and publish HTML reports.")
    p.add_argument("--params", type=Path, default=Path("params/demo.yaml"),
                   help="parameter file (default params/demo.yaml)")
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                   help="folder of numbered notebooks")
    p.add_argument("--strict", action="store_true",
                   help="stop when any model's weights are missing (default: run the others)")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    args.argv = raw
    from mtbc.data.audio import AudioError
    from mtbc.data.collection import CollectionError
    from mtbc.extractors import WeightsUnavailableError

    try:
        return args.func(args)
    except (CollectionError, AudioError, WeightsUnavailableError, FileNotFoundError) as exc:
        print(f"mtbc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
