#!/usr/bin/env python
"""Regenerate the session in docs/workflow.md by running it: a real server, real commands, real output.

    .venv/bin/python scripts/workflow_session.py > /tmp/session.md

It starts `hashsvc serve` on a fresh data folder and a webhook receiver on loopback (tests/webhook_receiver.py),
runs each command with bash, and prints a console block in which API keys and the webhook secret appear as the
shell variables that hold them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from webhook_receiver import receiving  # noqa: E402

PORT = 18123
PDQ = "f8f0e0c0" * 8
NEAR = "f8f0e0c1" + "f8f0e0c0" * 7


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="hashsvc-demo-"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HASHSVC_DATA_DIR": str(data),
        "HASHSVC_PORT": str(PORT),
        "HASHSVC_WORKERS": "1",
        "HASHSVC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "API": f"http://127.0.0.1:{PORT}",
    }
    env.pop("HASHSVC_DATABASE_URL", None)
    shown: list[str] = []
    secrets: dict[str, str] = {}

    def run(command: str, *, show: bool = True, capture: str | None = None) -> str:
        result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120)
        output = (result.stdout + result.stderr).rstrip()
        if capture:
            value = json.loads(result.stdout)[capture]
            return str(value)
        if show:
            text = output
            for name, value in secrets.items():
                text = text.replace(value, f"${name}")
            shown.append(f"$ {command}" + (f"\n{text}" if text else ""))
        return output

    run("hashsvc migrate")
    for name, scope in (("PIPELINE", "match"), ("ANALYST", "curate"), ("OPS", "admin")):
        token = run(f"hashsvc keys create --name {name.lower()} --scope {scope} --json", capture="key")
        secrets[name] = token
        env[name] = token
    shown.append(
        "$ # (keys created with `hashsvc keys create --name pipeline|analyst|ops --scope match|curate|admin`,"
        " held in $PIPELINE, $ANALYST, $OPS)"
    )
    server = subprocess.Popen(["hashsvc", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        shown.append("$ hashsvc serve &   # HASHSVC_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 lets it call the receiver")
        with receiving() as receiver:
            env["HOOK"] = receiver.url
            env["HASHSVC_URL"] = env["API"]
            env["HASHSVC_KEY"] = secrets["ANALYST"]
            shown.append("$ export HASHSVC_URL=$API HASHSVC_KEY=$ANALYST   # the CLI, through the API")
            run("hashsvc bank create ncmec --category csam")
            run("hashsvc bank create needs-review --category csam --action review")
            run("hashsvc bank create benign --category other --action allow")
            curl = 'curl -s -H "Authorization: Bearer '
            created = run(
                f'{curl}$OPS" -H "Content-Type: application/json" $API/v1/webhooks '
                f'-d \'{{"url": "\'$HOOK\'", "events": ["block", "review", "review_resolved"]}}\'',
                show=False,
            )
            secret = json.loads(created)["secret"]
            receiver.secret = secret
            secrets["WEBHOOK_SECRET"] = secret
            shown.append(
                f'$ {curl}$OPS" -H "Content-Type: application/json" $API/v1/webhooks -d '
                f'\'{{"url": "\'$HOOK\'", "events": ["block", "review", "review_resolved"]}}\'\n'
                + created.replace(secret, "$WEBHOOK_SECRET").replace(receiver.url, "$HOOK")
            )
            run(
                f'{curl}$ANALYST" -H "Content-Type: application/json" $API/v1/banks/needs-review/items '
                f'-d \'{{"hashes": {{"pdq": "{PDQ}"}}, "reference": "partner-17"}}\''
            )
            time.sleep(1.5)
            match = (
                f'{curl}$PIPELINE" -H "Content-Type: application/json" $API/v1/match/hashes '
                f'-d \'{{"pdq": "{NEAR}", "content_id": "post-8812", "metadata": {{"uploader": "u-1931"}}}}\''
            )
            run(match)
            time.sleep(1.0)
            run("hashsvc events")
            run("hashsvc review list")
            run("hashsvc review claim 1")
            run('hashsvc review resolve 1 --resolution false_positive --allowlist-bank benign --reason "stock photo"')
            time.sleep(1.5)
            run(match)
            time.sleep(1.0)
            run("hashsvc events")
            env["HASHSVC_KEY"] = secrets["OPS"]
            run(
                f"{curl}$OPS\" $API/v1/webhooks/1/deliveries | python3 -c 'import json,sys; "
                '[print(d["id"], d["event_type"], d["status"], d["attempts"], d["idempotency_key"]) '
                'for d in json.load(sys.stdin)["deliveries"]]\''
            )
            received = [
                f"{r['event']} {r['key']} content_id={r['body']['event']['content_id']}" for r in receiver.requests
            ]
            shown.append("$ # what the receiver got (signatures verified):\n" + "\n".join(received))
    finally:
        server.terminate()
        server.wait(30)
    text = "\n".join(shown)
    text = re.sub(r"hashsvc-demo-[a-z0-9_]+", "hashsvc-demo", text)
    print("```console\n" + text + "\n```")


if __name__ == "__main__":
    main()
