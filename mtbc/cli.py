"""The ``mtbc`` command line: ``mtbc <command> --help`` for each command."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import yaml

#: ``mtbc.data.collection.KINDS`` (a test checks): the parser needs no audio stack.
COLLECTION_KINDS = ("demo", "csv", "gtzan", "mtat", "openmic", "folder")


class UsageError(ValueError):
    """A bad command-line value; the message names it and how to fix it."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum: int, bound_text: str):
    """An argparse type: a whole number ``>= minimum`` (``bound_text`` says so in errors)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be {bound_text}")
        return value

    return parse


_positive_int = _int_at_least(1, "at least 1")
_non_negative_int = _int_at_least(0, "0 or more")


def _seconds(minimum_exclusive: bool):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds")
        if value < 0 or (minimum_exclusive and value == 0):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'more than 0' if minimum_exclusive else '0 or more'} seconds")
        return value
    return parse


def _options(pairs: list[str]) -> dict:
    """``["model=m-a-p/MERT-v1-95M", "chunk_seconds=10"]`` -> typed dict (YAML scalars)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"option {pair!r} is not KEY=VALUE (e.g. -o chunk_seconds=10)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"option {pair!r}: the value is not a YAML scalar; quote it") \
                from None
    return out


def _shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes i/n (e.g. 0/4), not {text!r}") from None
    if not 0 <= i < n:
        raise UsageError(f"--shard {text}: needs 0 <= i < n (e.g. 0/4 ... 3/4)")
    return i, n


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

    shard = _shard(args.shard)  # every option is checked before any work
    options = _options(args.option)
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

    options = _options(args.option)
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

    return finetune_command(args, _options(args.option))


def cmd_bench(args) -> int:
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
    index = run(args.params, notebooks_dir=args.notebooks, strict=args.strict or None)
    print(f"\nreports: {index}")
    return 0


EXAMPLES = """\
examples:
  mtbc run --params params/demo.yaml       # the whole study: corpus, embeddings, reports
  mtbc scan path/to/music                  # check a collection before extracting
  mtbc predict data/models/demo/mfcc.npz song.mp3
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mtbc", description="Compare music embedding models on a music collection.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command",
                                parser_class=_Parser)
    max_help = "refuse files longer than this, on their header (s; default 3 h)"

    p = sub.add_parser("run", help="the whole study: corpus, embeddings, notebooks, HTML reports",
                       description="Build the demo corpus if needed, extract with the configured "
                                   "extractors, execute the notebooks and publish HTML reports. "
                                   "Example: mtbc run --params params/demo.yaml",
                       epilog="example: mtbc run --params params/demo.yaml")
    p.add_argument("--params", type=Path, default=Path("params/demo.yaml"),
                   help="parameter file (default params/demo.yaml)")
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"),
                   help="folder of numbered notebooks")
    p.add_argument("--strict", action="store_true",
                   help="stop when any model's weights are missing (default: run the others "
                        "and name the missing ones in every report)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="render the demo corpus (offline, deterministic)",
                       description="Render the demo corpus into data/demo/ (skipped when built). "
                                   "Writes only files it owns: a non-empty folder it did not "
                                   "make is refused.")
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/demo)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--per-class", type=_positive_int, default=12,
                   help="clips per class (default 12)")
    p.add_argument("--seconds", type=_seconds(True), default=15.0,
                   help="clip length in s (default 15)")
    p.add_argument("--force", action="store_true", help="rebuild even if already built")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fixtures", help="write random-weight test models (offline trial runs)",
                       description="Write a tiny MERT snapshot and VGGish files in the upstream "
                                   "formats with RANDOM weights, to try the pipeline offline. "
                                   "Numbers made with them are not model results.")
    p.add_argument("--out", type=Path, default=Path("data/fixtures"),
                   help="output folder (default data/fixtures)")
    p.set_defaults(func=cmd_fixtures)

    coll_help = ("'demo', a CSV manifest, a GTZAN, MagnaTagATune or OpenMIC-2018 root, or a "
                 "folder of label folders")
    from mtbc.extractors import available_extractors

    kinds = ["auto", *COLLECTION_KINDS]
    p = sub.add_parser("scan", help="check a collection: labels, durations, skipped files",
                       description="Decode every file once; list per-label counts and durations "
                                   "and the files skipped with their reasons.")
    p.add_argument("collection", help=coll_help)
    p.add_argument("--kind", choices=kinds, default="auto", help="collection layout")
    p.add_argument("--min-duration", type=_seconds(False), default=0.0,
                   help="skip shorter files (s)")
    p.add_argument("--max-duration", type=_seconds(True), default=None, help=max_help)
    p.add_argument("--out", type=Path, help="write the tracks table to this CSV")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("extract", help="extract embeddings into the cache",
                       description="Embed every track not yet cached. Repeat -o for options, "
                                   "e.g. -o model=m-a-p/MERT-v1-95M -o chunk_seconds=30.")
    p.add_argument("collection", help=coll_help)
    p.add_argument("--extractor", "-e", action="append", required=True,
                   choices=available_extractors(), metavar="NAME",
                   help=f"{', '.join(available_extractors())} (repeatable)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="extractor option (value parsed as YAML)")
    p.add_argument("--kind", choices=kinds, default="auto", help="collection layout")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.add_argument("--batch", type=_positive_int, default=8,
                   help="tracks per model batch (default 8)")
    p.add_argument("--shard", help="i/n: only shard i of n (split work across machines)")
    p.add_argument("--max-duration", type=_seconds(True), default=None, help=max_help)
    p.add_argument("--device", default=None, help="torch device for the models (cpu, cuda:1, "
                                                  "mps; default: the extractor's auto)")
    p.add_argument("--devices", default=None, metavar="LIST",
                   help="cuda:0,cuda:1,...: one process per device sharing the cache")
    from mtbc.cache.slurm_options import add_arguments as add_slurm_arguments

    add_slurm_arguments(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("cache", help="list (or verify) what the embedding cache holds",
                       description="List the embedding cache by extractor fingerprint; "
                                   "--verify lists damaged entries, --remove deletes them.")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.add_argument("--verify", action="store_true",
                   help="check every entry (shape, dtype, layers, finite); list the bad ones")
    p.add_argument("--remove", action="store_true",
                   help="with --verify: delete the bad entries and stale temp files")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("predict", help="classify new songs with a trained model file",
                       description="Extract what is missing and print the label and class "
                                   "probabilities of each file.")
    p.add_argument("model", type=Path, help="a model file (.npz) saved by notebook 04, or "
                   "the .json of `mtbc finetune --out`")
    p.add_argument("files", nargs="+", help="audio files or folders")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="override an extractor option recorded in the model (e.g. "
                        "model=<local folder> offline); outputs must not change")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("finetune", help="fine-tune a model's top layers, compare with its probe",
                       description="Train the top layers of a model plus a head on the "
                                   "labelled songs (lr and epochs chosen on validation tracks), "
                                   "compare with the frozen probe on the same folds, save the "
                                   "model for `mtbc predict`. A rerun resumes a killed run.",
                       epilog="example: mtbc finetune data/my_songs -e musicnn --out m/ft")
    p.add_argument("collection", help=coll_help)
    p.add_argument("-e", "--extractor", required=True, help="musicnn, mert or vggish")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="an extractor option (e.g. -o model=m-a-p/MERT-v1-95M)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--train-layers", type=_positive_int, default=None, metavar="K",
                     help="layers trained: musicnn 1 back end (default), 2 mid end too; MERT "
                          "the last K (default 4); VGGish the last K FC layers (default 3)")
    how.add_argument("--lora", type=_positive_int, default=None, metavar="R",
                     help="MERT: LoRA of rank R on the attention of its last 4 layers instead")
    p.add_argument("--epochs", type=_positive_int, default=20, help="most epochs (default 20)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="folds, init, order")
    p.add_argument("--out", type=Path, required=True, metavar="MODEL",
                   help="writes MODEL.safetensors and MODEL.json")
    p.add_argument("--json", type=Path, default=None, metavar="SUMMARY",
                   help="write accuracies, CIs, gain and p as JSON")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default data/cache)")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("bench", help="throughput and TFLOP/s against the same-run matmul peak",
                       description="Measure extractor and probe throughput and compare with "
                                   "the matmul peak measured in the same run; --json writes "
                                   "every figure as rows.")
    p.add_argument("--models", default=None,
                   help="comma-separated bench keys of the registered extractors (e.g. "
                        "mert-95m,vggish) and probe, store; default: all of them")
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

    from mtbc.similarity.commands import add_parsers as add_similarity_parsers

    add_similarity_parsers(sub, coll_help)  # similar, playlist
    return parser


#: mtbc's user errors by module (only a loaded module's can be raised: no import to answer).
_USER_ERRORS = {"mtbc.cache.store": ("NotACacheError",),
                "mtbc.cache.slurm_options": ("SlurmError",), "mtbc.data.audio": ("AudioError",),
                "mtbc.data.collection": ("CollectionError",), "mtbc.files": ("StorageError",),
                "mtbc.extractors": ("ExtractorConfigError", "ModelLoadError",
                                    "WeightsUnavailableError"),
                "mtbc.reports.folder": ("ReportFolderError",),
                "mtbc.reports.params": ("ParamsError",),
                "mtbc.similarity.errors": ("SimilarityInputError",)}


def _loaded(table: dict[str, tuple[str, ...]]) -> tuple[type[BaseException], ...]:
    return tuple(getattr(sys.modules[m], n) for m, names in table.items()
                 if m in sys.modules for n in names)


def _user_errors() -> tuple[type[BaseException], ...]:
    return (UsageError, FileNotFoundError, NotADirectoryError, PermissionError,
            *_loaded(_USER_ERRORS))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if type(exc).__name__ == "WeightsUnavailableError" and "\n[" in text:
        return text  # one line per missing model file, all named at once
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run one ``mtbc`` command; returns the exit status (2 for a user error)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw)
    args.argv = raw
    for key in ("max_duration",):
        if getattr(args, key, 0) is None:
            from mtbc.data.audio import DEFAULT_MAX_DURATION

            setattr(args, key, DEFAULT_MAX_DURATION)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"mtbc {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, the traceback only with --debug
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, _user_errors()):
            print(f"mtbc {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        from mtbc.files import storage_error

        fault = isinstance(exc, OSError) and storage_error(exc, Path(exc.filename or ".").parent)
        if fault:  # the machine's fault met outside mtbc's own writers: still one line
            print(f"mtbc {args.command}: error: {exc.filename or 'a file'}: {fault.strerror}",
                  file=sys.stderr)
            return 2
        if isinstance(exc, _loaded({"mtbc.reports.execute": ("NotebookFailed",)})):
            print(f"mtbc {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        hint = "" if args.debug else " (run with --debug for the traceback)"
        print(f"mtbc {args.command}: internal error: {type(exc).__name__}: "
              f"{' '.join(str(exc).split())}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
