"""What each ``mtbc`` command does (:mod:`mtbc.cli` builds the parser and calls these).

Each ``cmd_<name>(args) -> int`` takes the parsed arguments and returns the exit status;
models and the audio stack are imported inside the commands that use them, so that
``mtbc --help`` and a bad argument are answered without loading them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtbc.cli_args import UsageError, parse_options, parse_shard

__all__ = ["cmd_demo", "cmd_fixtures", "cmd_scan", "cmd_extract", "cmd_cache", "cmd_predict", "cmd_finetune", "cmd_bench", "cmd_run"]


def _extractors(names: list[str], options: dict) -> list:
    """Build (and load) every extractor, so bad names, options or model files stop the
    command before any file is scanned."""
    from mtbc.cache.extract import load_model
    from mtbc.extractors import ExtractorConfigError, get_extractor

    out = []
    for name in names:
        try:
            out.append(get_extractor(name, **options))
        except ExtractorConfigError as exc:
            raise UsageError(str(exc)) from None
    for extractor in out:
        load_model(extractor)
    return out


def _print_table(df, title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(df.to_string(index=False, max_colwidth=None) if len(df) else "(none)")


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
    from mtbc.files import check_writable

    if args.out:  # an --out folder that cannot take the file is refused before any work
        check_writable(args.out.parent, hint=f"choose another --out than {args.out}")
    coll = load_collection(args.collection, kind=args.kind, min_duration=args.min_duration,
                           max_duration=args.max_duration)
    print(f"{coll.name} ({coll.source}): {len(coll)} tracks, {len(coll.skipped)} skipped")
    _print_table(coll.summary().round(2).reset_index(), "per label (durations in s):")
    if coll.tracks["split"].notna().any():
        _print_table(coll.tracks.groupby("split").size().rename("tracks").reset_index(), "splits:")
    tags = coll.tag_summary()
    if len(tags):
        print(f"\ntags: {len(tags)} tags; {int(tags['positive'].sum())} present, "
              f"{int(tags['negative'].sum())} absent, {int(tags['unknown'].sum())} masked "
              f"(unknown) track-tag entries")
        _print_table(tags.reset_index(), "per tag:")
    _print_table(coll.skipped[["path", "reason"]], "skipped:")
    if args.out:
        from mtbc.files import StorageError, atomic_write

        text = coll.tracks.to_csv(index=False).encode("utf-8", "surrogateescape")
        try:
            atomic_write(args.out, lambda f: f.write(text))
        except StorageError as exc:
            raise exc.with_hint(f"choose another --out than {args.out}") from None
        print(f"\ntracks table written to {args.out}")
    return 0


def cmd_extract(args) -> int:
    from mtbc.cache.extract import extract_collection
    from mtbc.cache.store import EmbeddingStore
    from mtbc.data.collection import load_collection

    shard = parse_shard(args.shard)  # every option is checked before any work
    options = parse_options(args.option)
    if args.device:
        options.setdefault("device", args.device)
    if args.slurm:  # one job array over the collection's shards (mtbc.cache.slurm)
        from mtbc.cache.slurm import extract_command

        if shard or args.devices:
            raise UsageError("--slurm splits the collection into --tasks shards itself; drop "
                             "--shard/--devices (--gpus-per-task G runs G processes per task)")
        return extract_command(args, options, _extractors)
    from mtbc.cache.slurm_options import without_slurm

    if without_slurm(args):
        raise UsageError(f"{', '.join(without_slurm(args))} only apply with --slurm; add it")
    if args.devices:  # one subprocess per device, one shared cache (mtbc.cache.devices)
        from mtbc.cache.devices import parse_devices, run_on_devices

        try:
            devices = parse_devices(args.devices)
        except ValueError as exc:
            raise UsageError(f"--devices {args.devices!r}: {exc}") from None
        return run_on_devices(args.argv[1:], devices, shard)
    extractors = _extractors(args.extractor, options)
    coll = load_collection(args.collection, kind=args.kind, max_duration=args.max_duration)
    store = EmbeddingStore(args.cache)
    status = 0
    for extractor in extractors:
        report = extract_collection(coll.tracks, extractor, store, batch_tracks=args.batch,
                                    shard=shard, max_duration=args.max_duration)
        print(report)
        if report.repaired:
            import pandas as pd

            _print_table(pd.DataFrame(report.repaired, columns=["track_id", "entry", "problem"])
                         [["entry", "problem"]], "bad cache entries recomputed:")
        if len(report.failed):
            _print_table(report.failed[["path", "reason"]], "failed:")
            status = 1 if not report.extracted and not report.cached else status
    if len(coll.skipped):
        _print_table(coll.skipped[["path", "reason"]], "skipped while scanning:")
    return status


def cmd_cache(args) -> int:
    from mtbc.cache.store import EmbeddingStore

    store = EmbeddingStore(args.cache)
    if args.remove and not args.verify:
        raise UsageError("--remove needs --verify (it removes the entries --verify lists)")
    if args.verify:
        if args.remove:  # refuses (nothing removed) a folder that is not an mtbc cache
            bad, removed = store.remove_bad()
            _print_table(bad[["path", "problem"]], f"{store.root}: {len(bad)} bad entries")
            print(f"removed {len(bad)} bad entries and {len(removed)} stale temp files; "
                  f"`mtbc extract` recomputes them")
            return 0
        if not store.is_cache():
            raise UsageError(f"{store.root} is not an mtbc cache: nothing to verify; give the "
                             f"cache folder (--cache or MTBC_CACHE)")
        bad = store.verify()
        _print_table(bad[["path", "problem"]], f"{store.root}: {len(bad)} bad entries")
        return 1 if len(bad) else 0
    listing = store.list()
    if not len(listing):
        print(f"{store.root}: empty")
        _print_slurm_note(store.root)
        return 0
    summary = (listing.groupby("fingerprint")
               .agg(tracks=("content_hash", "size"), segments=("n_segments", "sum"),
                    layers=("n_layers", "first"), dim=("dim", "first"),
                    MiB=("bytes", lambda b: round(b.sum() / 2**20, 1))).reset_index())
    summary["model"] = [store.read_info(fp).get("model", store.read_info(fp).get("extractor"))
                        for fp in summary["fingerprint"]]
    _print_table(summary, f"{store.root}:")
    _print_slurm_note(store.root)
    return 0


def _print_slurm_note(root: Path) -> None:
    """Tasks of `mtbc extract --slurm` still writing into this cache (mtbc.cache.slurm)."""
    if (root / "slurm-logs").is_dir():
        from mtbc.cache.slurm import running_note

        print(running_note(root / "slurm-logs") or "", end="")


def cmd_predict(args) -> int:
    from mtbc.cache.store import EmbeddingStore
    from mtbc.evaluation.predict import predict_files
    from mtbc.extractors import ExtractorConfigError

    options = parse_options(args.option)
    paths = _predict_inputs(args.files)
    if args.model.suffix in (".json", ".safetensors"):  # a model of `mtbc finetune`
        from mtbc.finetune.command import predict_table
        from mtbc.finetune.model import FinetunedModelError

        try:
            _print_table(predict_table(args.model, paths).round(3).fillna("-"))
        except FinetunedModelError as exc:
            raise UsageError(str(exc)) from None
        return 0
    try:
        table = predict_files(args.model, paths, store=EmbeddingStore(args.cache),
                              extractor_options=options or None)
    except (ValueError, ExtractorConfigError) as exc:  # not a model file, or a mismatch
        raise UsageError(str(exc)) from None
    shown = table.drop(columns=["content_hash"], errors="ignore").round(3)
    if "error" in shown:
        shown["error"] = shown["error"].fillna("")
    _print_table(shown.astype(object).fillna("-"))
    failed = table["label"].isna()
    for path, error in zip(table.loc[failed, "path"], table.loc[failed, "error"], strict=True):
        print(f"mtbc predict: {path}: {' '.join(str(error).split())}", file=sys.stderr)
    if failed.all():
        print(f"mtbc predict: error: no file could be predicted ({len(table)} failed, each "
              f"named above)", file=sys.stderr)
        return 1
    return 0


def _predict_inputs(files: list[str]) -> list[Path]:
    """Files given and files under folders given; refuses missing inputs and empty folders."""
    paths, bad = [], []
    for p in map(Path, files):
        found = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        paths += found
        if not found or not (p.exists() or p.is_symlink()):
            bad.append(f"{p} ({'an empty folder' if found == [] else 'no such file or folder'})")
    if bad:
        raise UsageError(f"nothing to predict in {', '.join(bad)}; give audio files or "
                         f"folders that hold them")
    return paths


def cmd_finetune(args) -> int:
    from mtbc.finetune.command import finetune_command  # torch and the models: on use only

    return finetune_command(args, parse_options(args.option))


def cmd_bench_analysis(args) -> int:
    from mtbc.benchmark.analysis import (
        STEPS,
        AnalysisBenchOptions,
        bench_analysis,
        write_analysis_rows,
    )

    def counts(text, flag):
        try:
            values = [int(v) for v in str(text).split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1:
            raise UsageError(f"{flag} {text!r}: give whole numbers >= 1, e.g. {flag} 250,500")
        return values

    tracks, layers = counts(args.tracks, "--tracks"), counts(args.layers, "--layers")
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    bad = [s for s in steps if s not in STEPS]
    if bad or not steps:
        raise UsageError(f"--steps {args.steps!r}: choose among {','.join(STEPS)}")
    if min(tracks) < 50:
        raise UsageError(f"--tracks {args.tracks!r}: at least 50 tracks (5 folds x 10 labels)")
    rows = []
    for n in tracks:
        for n_layers in layers:
            rows += bench_analysis(AnalysisBenchOptions(
                n_tracks=n, n_layers=n_layers, dim=args.dim, n_segments=args.segments,
                steps=steps))
    if args.json:
        print(f"rows: {write_analysis_rows(rows, args.json)}")
    return 0


def cmd_bench(args) -> int:
    if getattr(args, "analysis", False):
        return cmd_bench_analysis(args)
    from mtbc.benchmark import suite
    from mtbc.benchmark.models import model_keys

    known = (*model_keys(), *suite.OTHER_BENCHES)
    models = [m.strip() for m in (args.models or ",".join(known)).split(",") if m.strip()]
    bad = [m for m in models if m not in known]
    if bad or not models:
        raise UsageError(f"--models {args.models!r}: unknown {', '.join(bad) or '(empty)'}; "
                         f"choose among {', '.join(known)}")
    if (args.device not in ("auto", "cpu", "cuda", "mps")
            and not args.device.startswith("cuda:")):
        raise UsageError(f"--device {args.device!r}: use cpu, cuda, cuda:N, mps or auto")
    return suite.main(models=",".join(models), device=args.device, quick=args.quick,
                      json_path=args.json, dtypes=args.dtypes, batch_sizes=args.batch_sizes,
                      clip_seconds=args.clip_seconds, repeats=args.repeats)


def cmd_run(args) -> int:
    from mtbc.reports.params import load_params

    load_params(args.params)  # a bad file is answered before the heavy imports below
    from mtbc.pipeline import run

    if not args.notebooks.is_dir():
        raise UsageError(f"--notebooks {args.notebooks}: no such folder; give the folder of "
                         f"numbered notebooks")
    index = run(args.params, notebooks_dir=args.notebooks, strict=args.strict or None,
                remeasure=args.remeasure)
    print(f"\nreports: {index}")
    return 0
