#!/usr/bin/env bash
# Build the hashsvc image (and a PostgreSQL image from Debian's packages), start compose.yaml, and answer a
# match through it: create a bank, add a generated photo, match an edited copy (block) and an unrelated
# photo (allow). Stops and removes the stack and its volumes at the end unless KEEP=1.
#   bash scripts/container_smoke.sh
# Environment:
#   BASE_IMAGE          image to build FROM; unset: made locally from Debian's packages (scripts/container_base.sh);
#                       debian:bookworm-slim where Docker Hub is reachable
#   POSTGRES_IMAGE      unset: built from deploy/postgres on BASE_IMAGE; postgres:15-bookworm where reachable
#   COMPOSE             compose command (default docker-compose; "docker compose" works too)
#   CONTAINER_EXTRA_CA  a PEM file to trust while the build downloads from PyPI (TLS-inspecting proxies)
#   KEEP=1              leave the stack running (then: docker-compose -p hashsvc-smoke down -v)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
read -r -a compose <<< "${COMPOSE:-docker-compose}"
compose+=(-f "$here/compose.yaml")  # the steps below run in a temporary folder
project=hashsvc-smoke
image=hashsvc:smoke

docker info > /dev/null 2>&1 || { echo "container_smoke.sh: no Docker engine answers (is dockerd running?)" >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "left running; stop with: ${compose[*]} -p $project down -v"
    else
        "${compose[@]}" -p "$project" down -v --remove-orphans > "$work/down.log" 2>&1 || cat "$work/down.log" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
seconds_since() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

base=${BASE_IMAGE:-}
if [ -z "$base" ]; then
    step "base image from Debian's packages (mmdebstrap; cached after the first run)"
    started=$(date +%s.%N)
    base=$(bash scripts/container_base.sh)
    echo "$base ready after $(seconds_since "$started") s"
fi
build_args=(--build-arg "BASE_IMAGE=$base")
if [ -n "${CONTAINER_EXTRA_CA:-}" ]; then
    build_args+=(--build-arg "EXTRA_CA_CERT=$(cat "$CONTAINER_EXTRA_CA")")
fi

step "docker build -t $image ."
started=$(date +%s.%N)
# The classic builder (no buildx on the machine this was written on); host network so the build uses the
# host's resolver. nice: the machine is shared.
build() { DOCKER_BUILDKIT=0 nice -n 10 docker build --network host "$@" > "$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }; }
build "${build_args[@]}" -t "$image" .
echo "built in $(seconds_since "$started") s; size $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"

postgres=${POSTGRES_IMAGE:-}
if [ -z "$postgres" ]; then
    postgres=local/postgres:15
    step "docker build -t $postgres deploy/postgres"
    started=$(date +%s.%N)
    build --build-arg "BASE_IMAGE=$base" -t "$postgres" deploy/postgres
    echo "built in $(seconds_since "$started") s"
fi

export HASHSVC_IMAGE=$image HASHSVC_POSTGRES_IMAGE=$postgres
HASHSVC_DB_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
HASHSVC_PUBLISH_PORT=${HASHSVC_PUBLISH_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export HASHSVC_DB_PASSWORD HASHSVC_PUBLISH_PORT
url=http://127.0.0.1:$HASHSVC_PUBLISH_PORT

step "${compose[*]} -p $project up -d"
# A stack left by KEEP=1 has a database made with another password: start from nothing.
"${compose[@]}" -p "$project" down -v --remove-orphans > "$work/down.log" 2>&1 || { cat "$work/down.log" >&2; exit 1; }
started=$(date +%s.%N)
"${compose[@]}" -p "$project" up -d 2>&1
container=$("${compose[@]}" -p "$project" ps -q hashsvc)
for _ in $(seq 300); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$container")
    [ "$health" = healthy ] && break
    if [ "$health" = unhealthy ] || [ "$(docker inspect -f '{{.State.Running}}' "$container")" != true ]; then
        "${compose[@]}" -p "$project" logs --tail 50 hashsvc >&2
        echo "container_smoke.sh: hashsvc is $health" >&2
        exit 1
    fi
    sleep 1
done
[ "$health" = healthy ] || { echo "container_smoke.sh: not healthy after 300 s" >&2; exit 1; }
echo "healthy (the image's HEALTHCHECK on /readyz) $(seconds_since "$started") s after 'up'"
"${compose[@]}" -p "$project" ps

step "what runs inside"
"${compose[@]}" -p "$project" exec -T hashsvc sh -c 'id; ls -ld "$HASHSVC_DATA_DIR"; touch /opt/x 2>&1 || true'
"${compose[@]}" -p "$project" exec -T hashsvc hashsvc --version 2>/dev/null || true

step "${compose[*]} exec hashsvc hashsvc init    (prints the admin key once)"
"${compose[@]}" -p "$project" exec -T hashsvc hashsvc init > "$work/init.out"
TOKEN=$(tail -1 "$work/init.out")
head -1 "$work/init.out"
echo '<the key, shown once>'

step "test images made with Pillow inside the image (nothing from ../shared)"
docker run --rm -i --network none --entrypoint python "$image" - > "$work/images.tar" <<'PY'
"""Write a tar of three JPEGs to stdout: a photo-like picture, an edited copy of it, and an unrelated one."""
import io
import random
import sys
import tarfile

from PIL import Image, ImageDraw, ImageFilter


def picture(seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(640), rng.randrange(480)
        w, h = rng.randrange(20, 200), rng.randrange(20, 200)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(2))


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


photo = picture(1)
edited = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((320, 240))  # mirrored, half size
files = {"photo.jpg": jpeg(photo, 92), "edited.jpg": jpeg(edited, 60), "unrelated.jpg": jpeg(picture(2), 92)}
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
    for name, data in files.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
PY
tar -x -C "$work" -f "$work/images.tar"
ls -l "$work"/*.jpg | awk '{print $5, $9}' | sed "s|$work/||"

cd "$work"
# Print the command as it can be pasted (quoted, the key as $TOKEN), then run it.
show() {
    local line='$' arg
    for arg in "$@"; do
        if [[ $arg == *"$TOKEN"* ]]; then
            line+=" \"${arg//$TOKEN/\$TOKEN}\""
        elif [[ $arg =~ ^[A-Za-z0-9_./:=@%+-]+$ ]]; then
            line+=" $arg"
        else
            line+=" '$arg'"
        fi
    done
    echo "$line"
    "$@" | tee "$work/last.json"
    echo
}
decision() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["decision"])' "$work/last.json"; }

step "a bank, an item, two matches (curl to the published port)"
show curl -sS -X POST "$url/v1/banks" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "csam-demo", "category": "csam", "action": "block"}'
show curl -sS -o /dev/null -w '%{http_code}\n' -X POST "$url/v1/banks/csam-demo/items" \
    -H "Authorization: Bearer $TOKEN" -F image=@photo.jpg -F reference=CASE-1
sleep 1  # every worker tails the change log every 0.25 s
show curl -sS -X POST "$url/v1/match" -H "Authorization: Bearer $TOKEN" -F image=@edited.jpg
edited=$(decision)
show curl -sS -X POST "$url/v1/match" -H "Authorization: Bearer $TOKEN" -F image=@unrelated.jpg
unrelated=$(decision)

step "result"
echo "edited copy: $edited; unrelated photo: $unrelated"
if [ "$edited" != block ] || [ "$unrelated" != allow ]; then
    echo "container_smoke.sh: FAILED (expected block and allow)" >&2
    exit 1
fi
echo "container smoke test passed"
