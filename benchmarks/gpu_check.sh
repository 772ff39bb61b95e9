#!/usr/bin/env bash
# The GPU checks in one call, for a machine with a CUDA GPU (the project's device machine, whose
# python3 has numba, numba-cuda, torch, pytest, hypothesis, typer, rich and threadpoolctl; nothing
# is installed here). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh [CORPUS]
#
# 1. the device: numba-cuda finds the GPU (charrnn.cuda_probe.cuda_status), nvidia-smi's view of it;
# 2. the CUDA tests on the real GPU: tests/test_cuda_sim.py's `device` suite (CHARRNN_CUDA_TESTS=device:
#    every kernel, every cell at 1 and 2 layers with dropout, training steps, eval, sampling, and
#    train / sample / eval / the CLI on "cuda", each against the CPU);
# 3. the GPU rows of benchmarks/bench.py (--device cuda --quick --skip-memory), in two runs, each
#    printing its own table: first the lstm and gru rows (1 and 2 layers), then the rnn rows with
#    the start-up rows that come with them (many short `charrnn` processes, each compiling its
#    kernels: the slow part). BENCH_ARGS adds flags to both runs.
#
# The whole script stops within TOTAL_LIMIT seconds (default 465: under 8 minutes with the
# machine's own start-up): each step gets at most its cap (TEST_LIMIT, BENCH_LIMIT) and never more
# than what is left, the last run whatever remains. The summary at the end says what passed,
# failed or ran out of time, and the exit code is 0 only when every step passed. Logs go to $OUT
# (the device machine's folder that comes back) when it is set, else to a temporary folder.
# CORPUS: the text bench.py trains on; by default tinyshakespeare where the checkout has it, else a
# text made of this repository's own files (the rows' speeds barely depend on the text).

set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset NUMBA_ENABLE_CUDASIM CHARRNN_DEVICE  # a real GPU, not the simulator
PY=${PYTHON:-python3}
LOGS=${OUT:-$(mktemp -d)}
TOTAL_LIMIT=${TOTAL_LIMIT:-465}
TEST_LIMIT=${TEST_LIMIT:-220}
BENCH_LIMIT=${BENCH_LIMIT:-120}
STARTED=$SECONDS
SUMMARY=()
FAILED=0

step() {  # step NAME CAP LOG COMMAND...: run it for at most CAP seconds (and what is left), log it, record how it ended
    local name=$1 limit=$2 log=$3 rc left=$((TOTAL_LIMIT - (SECONDS - STARTED)))
    shift 3
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
        SUMMARY+=("SKIPPED  $name (no time left)")
        FAILED=1
        return 1
    fi
    echo
    echo "=== $name (at most ${limit}s): $*"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOGS/$log"
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then
        SUMMARY+=("PASS     $name (${took}s)")
    elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        SUMMARY+=("TIMEOUT  $name (stopped after ${took}s; see $LOGS/$log)")
        FAILED=1
    else
        SUMMARY+=("FAIL     $name (exit $rc after ${took}s; see $LOGS/$log)")
        FAILED=1
    fi
    return "$rc"
}

finish() {
    echo
    echo "=== summary (${SECONDS}s in all, $((SECONDS - STARTED))s of checks)"
    printf '  %s\n' "${SUMMARY[@]}"
    [ "$FAILED" -eq 0 ] && echo "  ALL PASSED" || echo "  SOME CHECKS DID NOT PASS"
    exit "$FAILED"
}

nvidia-smi -L 2>/dev/null || echo "(nvidia-smi not found)"
if ! step "device: numba-cuda finds a GPU" 45 device.log "$PY" -c "
from charrnn.cuda_probe import cuda_status, simulated
usable, reason = cuda_status()
print('charrnn:', reason)
raise SystemExit(0 if usable and not simulated() else 1)"; then
    finish  # nothing else can run
fi

step "CUDA tests on the GPU (CHARRNN_CUDA_TESTS=device)" "$TEST_LIMIT" tests.log \
    env CHARRNN_CUDA_TESTS=device "$PY" -m pytest -q -rfEs -p no:cacheprovider -p no:xdist \
    tests/test_cuda_sim.py tests/test_cuda_network.py tests/test_cuda_wiring.py

CORPUS=${1:-}
if [ -z "$CORPUS" ]; then
    for candidate in shared/corpora/tinyshakespeare.txt shared/tinyshakespeare.txt \
                     ../shared/corpora/tinyshakespeare.txt ../shared/tinyshakespeare.txt; do
        if [ -f "$candidate" ]; then CORPUS=$candidate; break; fi
    done
fi
if [ -z "$CORPUS" ]; then  # about 1 MB of this repository's own text
    CORPUS="$LOGS/repo_text.txt"
    : >"$CORPUS"
    while [ "$(wc -c <"$CORPUS")" -lt 1000000 ]; do
        cat README.md charrnn/*.py charrnn/*/*.py tests/*.py >>"$CORPUS"
    done
    echo "(bench corpus: this repository's text, $CORPUS)"
fi
# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
step "benchmarks/bench.py --device cuda: lstm and gru rows" "$BENCH_LIMIT" bench_cells.log \
    "$PY" benchmarks/bench.py --device cuda --quick --skip-memory --corpus "$CORPUS" --cells lstm gru ${BENCH_ARGS:-}
# shellcheck disable=SC2086
step "benchmarks/bench.py --device cuda: rnn and start-up rows" "$TOTAL_LIMIT" bench_rnn.log \
    "$PY" benchmarks/bench.py --device cuda --quick --skip-memory --corpus "$CORPUS" --cells rnn ${BENCH_ARGS:-}

finish
