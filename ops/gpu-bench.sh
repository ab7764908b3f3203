#!/usr/bin/env bash
# Streams per GPU: `argus bench live --find-max` with Triton's models on the GPU.
#
#   bash ops/gpu-bench.sh [FPS] [STEP_SECONDS]      (defaults: 5 fps, 60 s per step)
#
# Run it on a Linux host with an NVIDIA GPU and its driver (nvidia-smi works), from the
# repository root, with ../shared beside it (or ARGUS_SHARED set). It uses the embedded
# stack (no Docker): `make bootstrap`, then swaps the Triton environment's onnxruntime for
# onnxruntime-gpu of the same version, so the detector, re-id, pose and face models run
# with onnxruntime's CUDAExecutionProvider (DetectorRunner and the other runners choose
# CUDA whenever the installed onnxruntime offers it). Everything else (grabber, worker,
# Kafka, Redis) stays on the CPU, as on a real GPU host: the figure is cameras per host
# with one GPU, whichever part saturates first.
#
# Writes bench-gpu/find-max.json and bench-gpu/summary.txt (table per step, the
# providers the detector loaded with, nvidia-smi before/after). Put the figure, the
# host, the GPU and the versions into docs/benchmarks.md.
set -euo pipefail

FPS=${1:-5}
STEP=${2:-60}
OUT=bench-gpu
cd "$(dirname "$0")/.."

command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 || {
  echo "gpu-bench: no NVIDIA GPU here (nvidia-smi -L failed); run it on a GPU host" >&2
  exit 2
}

make bootstrap
ORT=$(.venv-triton/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')
if ! .venv-triton/bin/python -c 'import onnxruntime as o, sys
sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' 2>/dev/null; then
  echo "gpu-bench: installing onnxruntime-gpu==$ORT into .venv-triton"
  .venv-triton/bin/pip uninstall -q -y onnxruntime
  .venv-triton/bin/pip install -q "onnxruntime-gpu==$ORT" "numpy==1.26.4"
fi
.venv-triton/bin/python -c 'import onnxruntime as o
p = o.get_available_providers(); print("onnxruntime providers:", p)
assert "CUDAExecutionProvider" in p, "onnxruntime-gpu has no CUDA provider (CUDA/cuDNN libs?)"'

mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi-before.txt"
# a fresh Triton, so that the models load with the GPU build
.venv/bin/argus stack down --only triton || true
.venv/bin/argus stack up
grep -h "detector: loaded" "${ARGUS_STACK_DIR:-.stack}/triton/server.log" | tail -2 | tee "$OUT/providers.txt"
if ! grep -q CUDAExecutionProvider "$OUT/providers.txt"; then
  echo "gpu-bench: the detector did not load on CUDA; see ${ARGUS_STACK_DIR:-.stack}/triton/server.log" >&2
  exit 1
fi

.venv/bin/argus bench live --find-max --fps "$FPS" --step-duration "$STEP" \
  --json "$OUT/find-max.json" | tee "$OUT/summary.txt"
nvidia-smi > "$OUT/nvidia-smi-after.txt"
echo "gpu-bench: results in $OUT/ (find-max.json, summary.txt, providers.txt)"
