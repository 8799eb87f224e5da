#!/usr/bin/env bash
# Seconds from `docker run` to /readyz 200 for the hashsvc image, with the numba kernels compiled at build
# time (warm, the default) and without them (cold: NUMBA_CACHE_DIR is the empty /tmp, so every worker
# compiles). Alternates the two, ROUNDS times each, on the embedded SQLite store; prints each run and the medians.
#   bash scripts/container_startup.sh [IMAGE]        (default hashsvc:smoke; ROUNDS=3)
set -euo pipefail
image=${1:-hashsvc:smoke}
rounds=${ROUNDS:-3}
uptime
declare -A times=([warm]="" [cold]="")
run_once() {
    local variant=$1 extra=() port name started
    [ "$variant" = cold ] && extra=(-e NUMBA_CACHE_DIR=/tmp)  # exists, so the entrypoint copies nothing
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    name=hashsvc-startup-$$-$variant
    started=$(date +%s.%N)
    docker run -d --rm --name "$name" --read-only --tmpfs /tmp -p "127.0.0.1:$port:8080" "${extra[@]}" "$image" > /dev/null
    until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
        sleep 0.2
        docker inspect "$name" > /dev/null 2>&1 || { echo "$name died" >&2; exit 1; }
    done
    python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$started"
    docker rm -f -v "$name" > /dev/null  # -v: its anonymous data volume too
}
for round in $(seq "$rounds"); do
    for variant in warm cold; do
        seconds=$(run_once "$variant")
        echo "round $round $variant: ready after $seconds s"
        times[$variant]+="$seconds "
    done
done
for variant in warm cold; do
    python3 -c 'import statistics, sys; v = [float(x) for x in sys.argv[2:]]; print(f"{sys.argv[1]}: median {statistics.median(v):.1f} s of {v}")' \
        "$variant" ${times[$variant]}
done
uptime
