#!/bin/sh
# Entrypoint of the hashsvc image (runs under tini as PID 1).
#   serve [flags]   the default: wait for the store, bring its schema up to date, then `hashsvc serve`
#   anything else   runs as `hashsvc ...`, e.g. `docker run --rm IMAGE hash photo.jpg`
# The admin key is never made here: printed by a start-up script it would sit in the container's log. Run
# `hashsvc init` in the running container instead (docs/container.md), which prints it to your terminal once.
set -eu
if [ "${1:-serve}" != serve ]; then
    exec hashsvc "$@"
fi
[ $# -gt 0 ] && shift
# numba's kernels, compiled when the image was built (Dockerfile): copy them where numba may write.
if [ -d /opt/hashsvc/numba-cache ] && [ -n "${NUMBA_CACHE_DIR:-}" ] && [ ! -e "$NUMBA_CACHE_DIR" ]; then
    cp -R --preserve=timestamps /opt/hashsvc/numba-cache "$NUMBA_CACHE_DIR"
fi
attempts=${MIGRATE_ATTEMPTS:-30}
n=1
# PostgreSQL may still be starting (compose waits for its healthcheck, other orchestrators may not).
until hashsvc migrate; do
    if [ "$n" -ge "$attempts" ]; then
        echo "hashsvc-entrypoint: the store is still not reachable after $n attempts; giving up" >&2
        exit 1
    fi
    n=$((n + 1))
    sleep 2
done
exec hashsvc serve "$@"
