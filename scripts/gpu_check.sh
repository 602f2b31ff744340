#!/usr/bin/env bash
# The GPU check: GPU tests, d2m bench at the paper's batch, timings at batch 64/256 in fp32, bf16 and
# compiled, the largest batch per module, CUDA training of the tiny and small presets through
# `d2m run`, and the torchaudio feature path on CUDA against librosa. At most 8 minutes.
#
#   bash scripts/gpu_check.sh WORK [PACK]     results under WORK; PACK gets summary + log + tarball
#   bash scripts/gpu_check.sh prepare          (make gpu-check-prepare) here, where librosa and a
#                                              registry exist: data/gpu-check/ and .whl/
#
# The target GPU machine has torch, Lightning, pandas, seaborn, scipy, matplotlib and tqdm, but no
# omegaconf, wandb or librosa and no registry. So, once, on a machine with the project's venv:
#   make gpu-check-prepare CPU_REF=1    # dataset + librosa reference features + CPU timings + wheels
# then on the GPU machine, from a copy of the repository that also holds those two ignored folders
# (a remote runner: carry [".whl", "data/gpu-check"], time limit 600 s, results collected from $OUT):
#   bash scripts/gpu_check.sh /tmp/gpu-check $OUT
# $OUT then holds 4 files: summary.md, summary.json, gpu-check.log and gpu-check.tar.gz (all of WORK
# but checkpoints). Budget: about 10 s of set-up, at most 450 s of parts, a few seconds of packing.
# Without a CUDA device every CUDA part prints "no CUDA device: skipped ..." and the rest still runs.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export WANDB_MODE=${WANDB_MODE:-offline} WANDB_SILENT=true PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DATA=${GPU_CHECK_DATA:-data/gpu-check}

if [ "${1:-}" = "prepare" ]; then
  set -e
  # the wheels the GPU machine lacks, for its Python (3.12, x86-64): omegaconf (pure Python, needs only PyYAML)
  OMEGACONF=$("$PY" -c "import importlib.metadata as m; print(m.version('omegaconf'))")
  mkdir -p .whl
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "omegaconf==$OMEGACONF"
  "$PY" -m ablations.gpu_check prepare --data "$DATA" ${CPU_REF:+--cpu-reference}
  du -sh .whl "$DATA"
  exit 0
fi

WORK=${1:-results/gpu-check}
PACK=${2:-}
mkdir -p "$WORK"
LOG="$WORK/gpu-check.log"
{
  echo "gpu-check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), python: $PY"
  if ! "$PY" -c "import omegaconf" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/d2m-site \
        .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/d2m-site" \
        && echo "gpu-check: installed the carried wheels: $(cd .whl && ls *.whl | tr '\n' ' ')"
    else
      echo "gpu-check: error: omegaconf does not import and .whl/ holds no wheels; run make gpu-check-prepare"
      exit 2
    fi
  fi
  "$PY" -m ablations.gpu_check check "$WORK" --data "$DATA" ${GPU_CHECK_PARTS:+--parts "$GPU_CHECK_PARTS"} \
    ${GPU_CHECK_BUDGET:+--budget "$GPU_CHECK_BUDGET"}
  rc=$?
  echo "gpu-check: finished with status $rc at $(date -u '+%H:%M:%S UTC'); summary: $WORK/summary.md"
  exit $rc
} 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
if [ -n "$PACK" ] && [ -f "$WORK/summary.json" ]; then
  "$PY" -c "import sys; from pathlib import Path; from ablations.gpu_check import pack; \
[print('packed', p) for p in pack(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))]" "$WORK" "$PACK" "$LOG"
fi
exit "$rc"
