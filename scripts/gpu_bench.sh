#!/usr/bin/env bash
# Training-step benchmark of the fast QAT path on a CUDA machine, as one command:
#
#     bash scripts/gpu_bench.sh [OUT_DIR]
#
# For an offline machine (python3 with torch, no brevitas/qonnx): bring the wheels listed in the
# README ("Fast QAT on a GPU") in .whl/ of this checkout; they are installed into /tmp/site first.
# Writes OUT_DIR (default runs/gpu-bench)/*.json (bench_step.py --compare: float_s, qat_s, ratio,
# qat_eager_s, ...) and a log per benchmark; each step has its own time limit.
#
# Settings (environment): DEVICE (default cuda), STEPS (timed rounds, default 30), PAPER=0 skips
# the paper-size model (qmlp_resmlp_24_224), BATCH (default 128).
set -u
out=${1:-runs/gpu-bench}
device=${DEVICE:-cuda}
steps=${STEPS:-30}
batch=${BATCH:-128}
mkdir -p "$out" || exit 1
if [ -d .whl ] && compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
status=0

bench() {  # name, time limit (s), bench_step.py options
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  timeout "$limit" "$python" scripts/bench_step.py --device "$device" --compare \
    --json "$out/$name.json" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  grep -v -i "warn" "$out/$name.log" | tail -8
  [ $rc -eq 0 ] || { echo "$name failed (exit $rc), see $out/$name.log"; status=1; }
}

"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
bench mixer28-b$batch 300 --model qmlp_mixer_28 --batch-size "$batch" --steps "$steps" --warmup 5
if [ "${PAPER:-1}" != 0 ]; then
  bench resmlp24-b$batch 420 --model qmlp_resmlp_24_224 --batch-size "$batch" --steps 5 --warmup 2
  bench resmlp24-b$batch-bf16 300 --model qmlp_resmlp_24_224 --batch-size "$batch" --steps 5 \
    --warmup 2 --amp
fi
exit $status
