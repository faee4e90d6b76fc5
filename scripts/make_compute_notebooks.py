"""Write notebooks/07_compute.ipynb and 08_claims.ipynb (thin cells calling mtbc; no outputs)."""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
STANDARD = '''from typing import Optional  # papermill reads Optional[...] annotations

collection: str = "demo"  # 'demo', a folder of label folders, a CSV manifest or 'gtzan:<root>'
extractors: dict = {"mfcc": {"name": "mfcc"}}  # label -> options for mtbc.extractors.get_extractor
cache_dir: Optional[str] = None  # embedding cache; None means data/cache
run_record: Optional[str] = None  # run.json written by `mtbc run` (None: no run, e.g. in JupyterLab)
seed: int = 0  # random seed
'''


def notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    for kind, text, *tags in cells:
        cell = (nbformat.v4.new_markdown_cell(text) if kind == "md"
                else nbformat.v4.new_code_cell(text))
        if tags:
            cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


NB07 = [
    ("md", """# 07 · What each model costs to run

**Question.** How big is each model, how long does it take to load, how much memory does it
need, and how fast does it embed 30 s clips on this run's device? Each model is measured in
its own subprocess (so its peak memory is its own): parameters, weights on disk, load time,
peak RAM (and GPU memory on a GPU), seconds per 30 s clip at each batch size, audio seconds
per second, and achieved TFLOP/s as a share of a matrix-multiply peak measured in the same
subprocess. Models the run used are timed with the run's weights; the comparison's two
models (MERT-v1-330M, VGGish), when the run did not use them, with full-size **random
weights in the exact architecture** (speed only: same shapes, same kernels, meaningless
embeddings). The `weights` column says which weights every row used.

To keep the demo run short the defaults are batch sizes 1 and 8, one repeat and a time
budget per model: a batch whose estimated time exceeds the budget is skipped and listed.
Raise `batch_sizes`, `repeats` and `budget_s` for fuller figures (`docs/compute.md`)."""),
    ("code", STANDARD + '''device: str = "auto"  # where to time the models (auto: CUDA, else MPS, else CPU)
extra_models: list = ["mert-330m", "vggish"]  # also timed when the run did not use them
dtypes: list = ["auto", "float32"]  # precisions to time; auto is what extraction uses
batch_sizes: list = [1, 8]  # 30 s clips per batch
clip_seconds: float = 30.0  # clip length of the timing workload
repeats: int = 1  # best of N timings
budget_s: float = 45.0  # per model: larger batches are skipped when estimated to exceed it
agreement_tracks: int = 1  # run tracks embedded in fp32 and bf16 for the agreement table
probe_budget_s: float = 120.0  # the fp32-vs-bf16 probe runs when its extraction fits in this
decode_formats: list = ["wav", "mp3", "ogg"]  # formats whose decode cost is measured
isolate: bool = True  # one subprocess per model (False: in this kernel; peak RAM then mixed)
''', "parameters"),
    ("code", '''from IPython.display import Markdown, display

from mtbc import benchmark
from mtbc.benchmark import precision
from mtbc.study import open_study
from mtbc.reports.display import fixture_banner, record_summary
from mtbc.reports.tables import provenance

study = open_study(collection, extractors, cache_dir=cache_dir)
models = benchmark.models_for_run(extractors, extra=extra_models)
options = benchmark.BenchOptions(
    device=device, dtypes=dtypes, batch_sizes=batch_sizes, clip_seconds=clip_seconds,
    repeats=repeats, budget_s=budget_s, seed=seed,
    agreement_paths=precision.agreement_paths(study, agreement_tracks))
result = benchmark.bench_rows(models, options, isolate=isolate)
rows_file = benchmark.write_rows(result, benchmark.rows_path(run_record, cache_dir))
fixture_banner(study.metadata())'''),
    ("md", """## Cost per model

Size and memory per model (peak RSS is the model's subprocess, imports included), then speed:
one row per model, precision and batch size. Seconds are per 30 s clip, front end included;
TFLOP/s are the network's analytic FLOPs over that time, and their share of the matmul peak
measured in the same subprocess and precision (MFCC has no network)."""),
    ("code", '''benchmark.memory_frame(result)'''),
    ("code", '''benchmark.rows_frame(result)'''),
    ("code", '''skipped = benchmark.skipped_frame(result)
display(skipped if len(skipped) else Markdown("Every timing asked for was run."))'''),
    ("code", '''display(Markdown("Models that could not be measured: " + "; ".join(
    f"{f['label']}: {f['reason']}" for f in result["failed"])) if result["failed"]
    else Markdown("Every model was measured."))'''),
    ("md", """## Beside the comparison's figures

The comparison's table (its CPU figures are for a Jetson Orin, its GPU figures for an RTX
3090, the Apple ones for an M1), then ours on this machine, in the precision mtbc uses. Our
sizes are parameters x 4 bytes (fp32 weights)."""),
    ("code", '''benchmark.claimed_compute()'''),
    ("code", '''benchmark.ours_beside_claims(result)'''),
    ("md", """## bf16 on this device

`dtype="auto"` runs MERT and VGGish in bf16 on CUDA and on CPUs with native bf16
(AVX512-BF16 or AMX), musicnn and MFCC in fp32. What this CPU offers, the speed-up of bf16
over fp32 measured in the same subprocess, and how closely the bf16 time-mean embeddings of
this run's tracks follow fp32 (per layer, the lowest cosine similarity over chunks)."""),
    ("code", '''precision.precision_capability()'''),
    ("code", '''benchmark.speedup_table(result)'''),
    ("code", '''benchmark.agreement_table(result)'''),
    ("md", """### Does bf16 change what a probe learns?

The linear probe trained on the run's MERT embeddings in fp32 and in bf16, same folds."""),
    ("code", '''probe = precision.precision_probe(study, budget_s=probe_budget_s, seed=seed,
                                rows=result["rows"])
display(Markdown(probe) if isinstance(probe, str) else probe)'''),
    ("md", """## Decoding

What it costs to decode and resample one 30 s clip per format, as extraction does, and how many
decode threads keep a model fed at 100 clips per second (a GPU's rate)."""),
    ("code", '''benchmark.decode_costs(formats=decode_formats, clip_seconds=clip_seconds)'''),
    ("code", '''measured = sorted({r["label"] for r in result["rows"]})
record_summary(f"{len(measured)} model(s) timed on {device}: {', '.join(measured)}; "
               f"{len(result['failed'])} failed")
provenance(collection=study.collection.source, seed=seed, rows=str(rows_file),
           device=device, batch_sizes=str(batch_sizes), repeats=repeats)'''),
]

NB08 = [
    ("md", """# 08 · The comparison's claims, checked

**Question.** Which claims of the MERT-vs-VGGish comparison hold? Each claim stands beside what
mtbc measured in this run or what the checkpoints and configs say, with a verdict:
**confirmed**, **contradicted**, or **not testable here** (and why: another data set, other
hardware, random weights, a training-data claim). Figures from random or fixture weights are
labelled and never confirm an accuracy or statistics claim. Method: `docs/claims.md`."""),
    ("code", STANDARD + '''n_splits: int = 5  # outer folds for the accuracy figures (when computed here)
n_boot: int = 1000  # bootstrap resamples for their confidence intervals
''', "parameters"),
    ("code", '''from IPython.display import Markdown, display

from mtbc import benchmark, claims
from mtbc.study import open_study
from mtbc.reports.display import fixture_banner, record_summary
from mtbc.reports.tables import provenance

study = open_study(collection, extractors, cache_dir=cache_dir)
fixture_banner(study.metadata())
rows = benchmark.read_rows(benchmark.rows_path(run_record, cache_dir))
evidence = claims.evidence_from_study(study, compute=rows, run_record=run_record, seed=seed,
                                      n_splits=n_splits, n_boot=n_boot)
table = claims.audit_table(evidence)
record_summary(claims.claims_summary(table))
fixture_banner(study.metadata())'''),
    ("code", '''display(Markdown("Compute figures come from notebook 07 of this run." if rows else
                 "Notebook 07 left no figures for this run: the compute claims are not "
                 "testable here."))
display(Markdown(claims.run_files_note(evidence)))
claims.verdict_counts(table).to_frame("claims")'''),
    ("md", """## Every claim

`expected` is the claim's value or range; `mtbc found` is this run's figure or the config
value, `source` where it comes from."""),
    ("code", '''table[["topic", "claim", "expected", "mtbc found", "verdict", "why"]]'''),
    ("md", """## How each claim is checked"""),
    ("code", '''table[["section", "how it is checked", "source"]]'''),
    ("code", '''provenance(collection=study.collection.source, seed=seed, n_splits=n_splits,
           n_boot=n_boot, claims=len(table))'''),
]


def main() -> None:
    for name, cells in (("07_compute", NB07), ("08_claims", NB08)):
        nbformat.write(notebook(cells), ROOT / "notebooks" / f"{name}.ipynb")


if __name__ == "__main__":
    main()
