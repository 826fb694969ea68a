#!/usr/bin/env bash
# The GPU checks and benches in one command (issue 21), for a machine with a CUDA GPU:
#
#     bash bench/gpu.sh                # results under bench/results/gpu/
#     bash bench/gpu.sh --quick        # the tests and one base bf16 bench row only
#
# 1. `pytest -m gpu` (tests/test_gpu.py): fp32/bf16/fp16 x ZeRO 0-3 pretraining steps on base
#    (and large) at sequence 512 agree within the precision's tolerance; LAMB on flat buffers
#    equals LAMB on the parameters; interrupt + resume is exact; activation
#    checkpointing on/off agree; train.unpad on/off agree; xxlarge fits under ZeRO-3 and steps.
# 2. bench/pretrain_step.py --device cuda: albertctl vs transformers in the same run, tokens/s,
#    MFU against the bf16 matmul peak measured in the same run, peak memory, at sequence 512;
#    then bench/pretrain_e2e.py --device cuda: the whole `pretrain` path against a transformers loop.
#
# Test failures do not stop the benches (the figures are wanted either way); the script exits
# non-zero if the tests failed. Without a GPU it stops at once with a one-line reason.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

unset DS_ACCELERATOR                               # DeepSpeed picks CUDA itself
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"  # deterministic cuBLAS (resume check)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: bench/gpu.sh: no CUDA device visible to torch (CPU CI runs: pytest -m gpu, which skips)" >&2
    exit 2
fi

out=bench/results/gpu
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.csv"

# -n 0: one GPU, so the tests run one after another (pyproject runs the CPU suite on 2 workers)
python -m pytest -n 0 -m gpu -rs -v tests/test_gpu.py 2>&1 | tee "$out/tests.log"
tests=${PIPESTATUS[0]}

if (( quick )); then
    python bench/pretrain_step.py --device cuda --seq 512 --profiles base --precisions bf16 \
        --batch 32 --out "$out/pretrain_step_quick.json"
else
    # Batches sized for an 80 GB card at sequence 512; the per-profile CPU defaults are smaller.
    python bench/pretrain_step.py --device cuda --seq 512 --profiles base --precisions fp32 bf16 \
        --batch 32 --out "$out/pretrain_step_base_seq512.json"
    python bench/pretrain_step.py --device cuda --seq 512 --profiles large --precisions fp32 bf16 \
        --batch 16 --out "$out/pretrain_step_large_seq512.json"
    python bench/pretrain_step.py --device cuda --seq 128 --profiles tiny base --precisions fp32 bf16 \
        --batch 128 --out "$out/pretrain_step_seq128.json"
    # `albertctl pretrain` end to end (prepared sample corpus, train.unpad as the profile) vs transformers.
    python bench/pretrain_e2e.py --device cuda --profiles tiny base --precisions fp32 bf16 \
        --out "$out/pretrain_e2e.json"
fi

echo "tests exit status: $tests; results in $out/"
exit "$tests"
