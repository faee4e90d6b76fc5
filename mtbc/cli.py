"""The ``mtbc`` command line: ``mtbc <command> --help`` for each command."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from mtbc.cli_args import (
    COLLECTION_KINDS,
    Parser,
    UsageError,
    non_negative_int,
    positive_int,
    seconds_type,
)
from mtbc.commands import (
    cmd_bench,
    cmd_cache,
    cmd_demo,
    cmd_extract,
    cmd_finetune,
    cmd_fixtures,
    cmd_predict,
    cmd_run,
    cmd_scan,
)

EXAMPLES = """\
examples:
  mtbc run --params params/demo.yaml       # the whole study: corpus, embeddings, reports
  mtbc scan path/to/music                  # check a collection before extracting
  mtbc predict data/models/demo/mfcc.npz song.mp3
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mtbc", description="Compare music embedding models on a music collection.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command",
                                parser_class=Parser)
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
    p.add_argument("--remeasure", action="store_true",
                   help="time every model again in notebook 07 and replace its kept timings "
                        "(default: reuse timings measured on this machine with the same "
                        "versions, model and workload)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="render the demo corpus (offline, deterministic)",
                       description="Render the demo corpus into data/demo/ (skipped when built). "
                                   "Writes only files it owns: a non-empty folder it did not "
                                   "make is refused.")
    p.add_argument("--out", type=Path, default=None, help="output folder (default data/demo)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--per-class", type=positive_int, default=12,
                   help="clips per class (default 12)")
    p.add_argument("--seconds", type=seconds_type(True), default=15.0,
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
    p.add_argument("--min-duration", type=seconds_type(False), default=0.0,
                   help="skip shorter files (s)")
    p.add_argument("--max-duration", type=seconds_type(True), default=None, help=max_help)
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
    p.add_argument("--batch", type=positive_int, default=8,
                   help="tracks per model batch (default 8)")
    p.add_argument("--shard", help="i/n: only shard i of n (split work across machines)")
    p.add_argument("--max-duration", type=seconds_type(True), default=None, help=max_help)
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
    how.add_argument("--train-layers", type=positive_int, default=None, metavar="K",
                     help="layers trained: musicnn 1 back end (default), 2 mid end too; MERT "
                          "the last K (default 4); VGGish the last K FC layers (default 3)")
    how.add_argument("--lora", type=positive_int, default=None, metavar="R",
                     help="MERT: LoRA of rank R on the attention of its last 4 layers instead")
    p.add_argument("--epochs", type=positive_int, default=20, help="most epochs (default 20)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="folds, init, order")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="auto (default): bf16 autocast on GPUs with bf16 and CPUs with native "
                        "bf16, else float32; float32 turns it off")
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
    a = p.add_argument_group("analysis", "--analysis times notebooks 03-06's functions on a "
                                         "synthetic study instead of the extractors")
    a.add_argument("--analysis", action="store_true",
                   help="time the analysis (03 describe, 04 classify, 05 compare, 06 tagging)")
    a.add_argument("--tracks", default="1000", help="tracks, or a comma list (e.g. 250,500,1000)")
    a.add_argument("--layers", default="25", help="layers of the big model, or a comma list")
    a.add_argument("--dim", type=positive_int, default=1024, help="dimensions (default 1024)")
    a.add_argument("--segments", type=positive_int, default=6, help="segments per track")
    a.add_argument("--steps", default="03,04,05,06", help="notebook steps to time")
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
