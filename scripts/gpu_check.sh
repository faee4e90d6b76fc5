#!/usr/bin/env bash
# GPU check for a session that has one (not run on the CPU-only machines mtbc was built on).
#   bash scripts/gpu_check.sh [N_CLIPS] [OUT_DIR]
# 1. `mtbc bench --device cuda` for every model (random full-size weights: speed only), rows
#    to OUT_DIR/bench_cuda.json;
# 2. end to end: N_CLIPS (default 1000) synthetic 30 s WAV clips at 44.1 kHz stereo, a
#    MERT-v1-330M-shaped random-weight snapshot, `mtbc extract` on every visible GPU (one
#    process each, one shared cache): decode, resample to 24 kHz, extract in bf16, cache;
#    prints wall time and clips per second. A second pass must find everything cached.
set -euo pipefail
N=${1:-1000}
OUT=${2:-${OUT:-/tmp/mtbc-gpu-check}}
PY=${PYTHON:-python}
mkdir -p "$OUT"
$PY - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
for i in range(torch.cuda.device_count()):
    free, total = torch.cuda.mem_get_info(i)
    print(f"cuda:{i}: {torch.cuda.get_device_name(i)}, {free / 2**30:.0f} of "
          f"{total / 2**30:.0f} GiB free, bf16 {torch.cuda.is_bf16_supported()}")
PY
echo "== mtbc bench --device cuda"
$PY -m mtbc.cli bench --device cuda --models mert-95m,mert-330m,vggish,musicnn,mfcc \
    --batch-sizes 1,8,16,32 --repeats 2 --json "$OUT/bench_cuda.json"

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
