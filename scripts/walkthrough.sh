#!/usr/bin/env bash
# The README's five-minute walk-through, runnable: a fresh data folder, a server, a bank, an image, an edited copy.
#   bash scripts/walkthrough.sh path/to/photo.jpg
set -euo pipefail
photo=${1:?usage: walkthrough.sh PHOTO}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
export HASHSVC_DATA_DIR=$work/data HASHSVC_PORT=${HASHSVC_PORT:-8080}
url=http://127.0.0.1:$HASHSVC_PORT
"$here/.venv/bin/hashsvc" init > "$work/init.out"
TOKEN=$(tail -1 "$work/init.out")
"$here/.venv/bin/hashsvc" serve > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "$url/readyz" > /dev/null; do sleep 0.2; done
"$here/.venv/bin/python" - "$photo" "$work" <<'PY'
import sys
from PIL import Image
photo, work = sys.argv[1:]
image = Image.open(photo).convert("RGB")
image.save(f"{work}/photo.jpg", quality=92)
half = (image.width // 2, image.height // 2)
image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize(half).save(f"{work}/edited.jpg", quality=60)
PY
cd "$work"
show() { echo "\$ $*" | sed "s/$TOKEN/\$TOKEN/g"; "$@"; echo; echo; }
show curl -s -X POST "$url/v1/banks" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "csam-demo", "category": "csam", "action": "block"}'
show curl -s -X POST "$url/v1/banks/csam-demo/items" -H "Authorization: Bearer $TOKEN" -F image=@photo.jpg -F reference=CASE-1
sleep 0.5
show curl -s -X POST "$url/v1/match" -H "Authorization: Bearer $TOKEN" -F image=@edited.jpg
show curl -s -X POST "$url/v1/match" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: image/jpeg' --data-binary @/etc/hostname
