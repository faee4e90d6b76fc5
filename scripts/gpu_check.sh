#!/usr/bin/env bash
# GPU check for a session that has one (not run on the CPU-only machines mtbc was built on).
#   bash scripts/gpu_check.sh [N_CLIPS] [OUT_DIR]
# 1. `mtbc bench --device cuda` for every model (random full-size weights: speed only), rows
#    to OUT_DIR/bench_cuda.json;
# 2. end to end: N_CLIPS (default 1000) synthetic 30 s WAV clips at 44.1 kHz stereo, a
#    MERT-v1-330M-shaped random-weight snapshot, `mtbc extract` on every visible GPU (one
#    process each, one shared cache): decode, resample to 24 kHz, extract in bf16, cache;
#    prints wall time and clips per second. A second pass must find everything cached.
# 3. fine-tuning (`mtbc finetune`'s training loop): MERT-v1-95M and 330M with their last 4
#    transformer layers trained, and with LoRA (rank 8) on those layers instead: samples per
#    second, seconds per epoch extrapolated to 1,000 x 30 s clips, peak GPU memory, the batch
#    size sized from free memory and the precision (bf16 autocast); the real weights when
#    they are in the Hugging Face cache, else random weights of full size (speed only). Rows
#    to OUT_DIR/finetune_cuda.json.
# PARTS (default bench,extract,finetune) picks the steps, e.g. PARTS=finetune. Without a
# CUDA device the script says so and exits 0.
set -euo pipefail
N=${1:-1000}
OUT=${2:-${OUT:-/tmp/mtbc-gpu-check}}
PY=${PYTHON:-python}
PARTS=${PARTS:-bench,extract,finetune}
if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible; skipped (run it on a machine with a GPU)"
    exit 0
fi
part() { [[ ",$PARTS," == *",$1,"* ]]; }
mkdir -p "$OUT"
$PY - <<'PY'
import torch
for i in range(torch.cuda.device_count()):
    free, total = torch.cuda.mem_get_info(i)
    print(f"cuda:{i}: {torch.cuda.get_device_name(i)}, {free / 2**30:.0f} of "
          f"{total / 2**30:.0f} GiB free, bf16 {torch.cuda.is_bf16_supported()}")
PY
if part bench; then
echo "== mtbc bench --device cuda"
$PY -m mtbc.cli bench --device cuda --models mert-95m,mert-330m,vggish,musicnn,mfcc \
    --batch-sizes 1,8,16,32 --repeats 2 --json "$OUT/bench_cuda.json"
fi

if part extract; then
echo "== $N synthetic 30 s clips and a MERT-v1-330M-shaped random snapshot"
$PY - "$N" "$OUT" <<'PY'
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from mtbc.benchmark.timing import synthetic_clip
from mtbc.extractors.fixtures import make_mert_snapshot

n, out = int(sys.argv[1]), Path(sys.argv[2])
clips = out / "clips"
for i in range(n):
    label = clips / f"class{i % 10}"
    label.mkdir(parents=True, exist_ok=True)
    path = label / f"clip{i:05d}.wav"
    if not path.exists():
        x = synthetic_clip(30.0, 44100, seed=i)
        sf.write(path, np.stack([x, np.roll(x, 7)], axis=1), 44100, subtype="PCM_16")
snap = out / "mert-330m-random"
if not (snap / "config.json").exists():
    make_mert_snapshot(snap, variant="330m", tiny=False, weights_format="safetensors")
print(f"{n} clips in {clips}; snapshot {snap}")
PY
DEVICES=$($PY -c "import torch; print(','.join(f'cuda:{i}' for i in range(torch.cuda.device_count())))")
echo "== mtbc extract on $DEVICES (decode, resample, extract, cache)"
rm -rf "$OUT/cache"
start=$(date +%s.%N)
$PY -m mtbc.cli extract "$OUT/clips" -e mert -o model="$OUT/mert-330m-random" \
    --cache "$OUT/cache" --batch 32 --devices "$DEVICES"
end=$(date +%s.%N)
$PY -c "s = $end - $start; print(f'end to end: $N clips x 30 s in {s:.1f} s = {$N / s:.1f} clips/s, {$N * 30 / s:.0f} audio-s/s')"
echo "== second pass (everything cached)"
$PY -m mtbc.cli extract "$OUT/clips" -e mert -o model="$OUT/mert-330m-random" \
    --cache "$OUT/cache" --devices "$DEVICES"
fi

if part finetune; then
echo "== fine-tuning MERT-v1-95M / 330M: last 4 layers, and LoRA rank 8 on them"
$PY - "$OUT" <<'PY'
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mtbc.benchmark.timing import synthetic_clip
from mtbc.extractors import ModelLoadError, WeightsUnavailableError, get_extractor
from mtbc.extractors.mert import MertExtractor
from mtbc.finetune.device import autocast, choose_batch_size, training_precision
from mtbc.finetune.train import FineTuned, RunData, TrainOptions, Watch, train_run

out = Path(sys.argv[1])
N_SAMPLES, EPOCHS, CLIPS, CLIP_S = 96, 3, 1000, 30.0  # epoch 1 is warm-up, not timed
rows = []
for key, model_id in (("mert-95m", "m-a-p/MERT-v1-95M"), ("mert-330m", "m-a-p/MERT-v1-330M")):
    try:
        ext = get_extractor("mert", model=model_id, device="cuda", chunk_seconds=CLIP_S).load()
        weights = "pretrained"
    except (WeightsUnavailableError, ModelLoadError, OSError) as exc:
        print(f"{key}: no real weights here ({type(exc).__name__}); random full-size weights")
        ext = MertExtractor.random_full_size(key, device="cuda")
        weights = "random (speed only)"
    wave = synthetic_clip(CLIP_S, ext.sample_rate, seed=0)
    for how, lora in (("last 4 layers", None), ("LoRA r8 on last 4", 8)):
        split = ext.trunk_and_top(4, **({} if lora is None else {"lora": lora}))
        precision = training_precision("auto", ext.device)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(precision, ext.device):
            trunk = np.ascontiguousarray(split.trunk(wave), np.float32)  # (1, frames, hidden)
        torch.cuda.synchronize()
        trunk_s = time.perf_counter() - t0
        per_clip = len(trunk)
        rng = np.random.default_rng(0)
        X = np.repeat(trunk, N_SAMPLES // per_clip + 1, axis=0)[:N_SAMPLES]
        X = X + 0.01 * rng.standard_normal(X.shape).astype(np.float32)
        y = np.arange(N_SAMPLES) % 10
        model = FineTuned(split.top, split.dim, 10)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        opts = TrainOptions(precision="auto", max_batch_size=64, n_threads=None)
        batch = choose_batch_size(model, X, y, batch_size=opts.batch_size,
                                  max_batch_size=opts.max_batch_size, precision=precision)
        torch.cuda.reset_peak_memory_stats()
        stamps = []
        train_run(model, RunData(X, y), lr=1e-4, epochs=EPOCHS, options=opts,
                  watch=Watch(on_epoch=lambda rec: (torch.cuda.synchronize(),
                                                    stamps.append(time.perf_counter()))))
        per_s = N_SAMPLES * (EPOCHS - 1) / (stamps[-1] - stamps[0])
        row = {"model": key, "weights": weights, "trained": how,
               "trainable_params": n_train, "precision": precision, "batch_size": batch,
               "samples_per_s": per_s, "segments_per_30s_clip": per_clip,
               "epoch_s_1000_clips": CLIPS * per_clip / per_s,
               "trunk_s_per_clip": trunk_s,
               "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20,
               "gpu": torch.cuda.get_device_name()}
        rows.append(row)
        print(f"{key:10s} {how:18s} {precision:9s} batch {batch:3d}: "
              f"{per_s:7.1f} samples/s, {row['epoch_s_1000_clips']:7.1f} s per epoch of "
              f"{CLIPS} x {CLIP_S:.0f} s clips (+ {trunk_s:.2f} s per clip once for the "
              f"frozen layers), peak {row['peak_gpu_mib']:.0f} MiB, "
              f"{n_train / 1e6:.1f}M trainable ({weights})")
        del model, split
        torch.cuda.empty_cache()
    del ext
    torch.cuda.empty_cache()
(out / "finetune_cuda.json").write_text(json.dumps(rows, indent=1))
print(f"rows: {out / 'finetune_cuda.json'}")
PY
fi
