#!/usr/bin/env bash
# Every GPU figure of the benchmarks, in order of importance, inside one device command of fixed length.
#
#   ../shared/device/prepare.sh cifar10 cora                     # here: stage wheels and data in .device/
#   source .device/env.sh && bash benchmarks/gpu_session.sh      # there (carry .device), or --smoke on a CPU
#
# Device time is counted in minutes, so each step runs only when the time left (GPU_BUDGET_S, default 540 s,
# from the start of this script) covers its usual length, under a timeout of the time left; each result is
# appended under $OUT as soon as it exists, so a step cut short keeps what it finished. An environment that
# cannot run zoo at all (no CUDA, an import error) stops the script within seconds, so a corrected rerun
# still fits. --smoke runs the same steps at toy sizes on a CPU, to rehearse the script before a lease.
set -u
OUT=${OUT:-/tmp/zoo-gpu-session}
mkdir -p "$OUT"
budget=${GPU_BUDGET_S:-540}
smoke=()
[ "${1:-}" = "--smoke" ] && smoke=(--smoke)
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

left() { echo $((budget - SECONDS)); }

step() {  # step NAME SECONDS_IT_USUALLY_TAKES COMMAND...
    local name=$1 need=$2
    shift 2
    if [ "${#smoke[@]}" -eq 0 ] && [ "$(left)" -lt "$need" ]; then
        echo "== skipped $name: $(left) s left, it usually takes $need s"
        return
    fi
    echo "== $name: start with $(left) s left"
    local began=$SECONDS
    timeout --signal=INT --kill-after=15 "$(left)" "$@"
    echo "== $name: exit $? after $((SECONDS - began)) s"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    $py -c "import torch, lightning, zoo; print(torch.__version__, lightning.__version__, torch.cuda.is_available())"
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"
if [ "${#smoke[@]}" -eq 0 ]; then
    $py -c "import torch, zoo; assert torch.cuda.is_available(), 'no CUDA device'" || exit 3
fi

step "side by side, eager (item 1)" 200 \
    $py benchmarks/side_by_side.py "${smoke[@]}" --rounds 3 --out "$OUT/side_by_side_gpu.jsonl" \
    --cases resnet50-224 gpt2-124m ddpm-unet gcn-large-graph
step "CIFAR-10 time to accuracy (item 2)" 150 \
    $py benchmarks/time_to_accuracy.py benchmarks/recipes/cifar10_speedrun_gpu.yaml "${smoke[@]}" --seeds 3 \
    --out "$OUT/time_to_accuracy_gpu.jsonl"
step "side by side, compiled ResNet-50 (item 1)" 120 \
    $py benchmarks/side_by_side.py "${smoke[@]}" --rounds 3 --out "$OUT/side_by_side_gpu.jsonl" \
    --cases resnet50-224-compiled
step "GPU-only tests (item 5)" 60 \
    $py -m pytest -q -rs -p no:cacheprovider tests/callbacks/test_ema.py tests/callbacks/test_training_aids.py \
    tests/data/test_on_device.py tests/data/test_vision.py
if [ "${#smoke[@]}" -eq 0 ]; then
    step "Cora leaderboard rows, gpu budget (item 4)" 60 \
        $py -m zoo leaderboard run --suite cora --budget gpu --seeds 3 --no_export --out "$OUT/cora_gpu.jsonl"
    step "vit_tiny recipe to the end (item 3)" 240 \
        $py benchmarks/recipe_accuracy.py recipes/cifar10/vit_tiny.yaml --out "$OUT/vit_tiny_gpu.jsonl" \
        -- --trainer.enable_model_summary false
fi
echo "== done with $(left) s of the budget left"
