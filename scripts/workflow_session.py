#!/usr/bin/env python
"""The session in docs/workflow.md, produced by running it: a real server, real commands, real output.

docs/workflow.md holds it as a cog block (scripts/docgen.py `workflow()`), so `tests/test_docs.py` fails when
what the commands print changes; `.venv/bin/cog -r -I scripts docs/workflow.md` regenerates it. Standing alone,

    .venv/bin/python scripts/workflow_session.py

prints the block. It starts `hashsvc serve` on a fresh data folder and a free port, and a webhook receiver on
loopback (tests/webhook_receiver.py), runs each command with bash, and shows API keys and the webhook secret as the
shell variables that hold them; times are elided (`…`, or `YYYY-MM-DDThh:mm:ss` in tables, keeping the columns).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
from docgen import _free_port, stable  # noqa: E402
from webhook_receiver import receiving  # noqa: E402

PDQ = "f8f0e0c0" * 8
NEAR = "f8f0e0c1" + "f8f0e0c0" * 7
_TABLE_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\b(?![.+])")
_DURATION = re.compile(r"\b[0-9]+(\.[0-9]+)? ms\)")
_OTHER_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")


def session() -> str:
    """Run the session; return the console block's body."""
    data = Path(tempfile.mkdtemp(prefix="hashsvc-demo-"))
    bin_dir = str(Path(sys.executable).parent)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHSVC_")}
    env |= {
        "PATH": f"{bin_dir}:{env['PATH']}",
        "HASHSVC_DATA_DIR": str(data),
        "HASHSVC_PORT": str(port),
        "HASHSVC_WORKERS": "1",
        "HASHSVC_REQUEST_LOG": "0",
        "HASHSVC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "API": f"http://127.0.0.1:{port}",
    }
    shown: list[str] = []
    hidden: dict[str, str] = {}  # value -> the variable shown instead

    def run(command: str, *, show: bool = True) -> str:
        result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120)
        output = (result.stdout + result.stderr).rstrip()
        if show:
            text = output
            for value, name in hidden.items():
                text = text.replace(value, f"${name}")
            shown.append(f"$ {command}" + (f"\n{text}" if text else ""))
        return output

    run("hashsvc migrate")
    for name, scope in (("PIPELINE", "match"), ("ANALYST", "curate"), ("OPS", "admin")):
        token = json.loads(run(f"hashsvc keys create --name {name.lower()} --scope {scope} --json", show=False))["key"]
        hidden[token] = name
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
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        shown.append("$ hashsvc serve &   # HASHSVC_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 lets it call the receiver")
        with receiving() as receiver:
            env["HOOK"] = receiver.url
            hidden[receiver.url] = "HOOK"
            env["HASHSVC_URL"] = env["API"]
            env["HASHSVC_KEY"] = env["ANALYST"]
            shown.append("$ export HASHSVC_URL=$API HASHSVC_KEY=$ANALYST   # the CLI, through the API")
            run("hashsvc bank create ncmec --category csam")
            run("hashsvc bank create needs-review --category csam --action review")
            run("hashsvc bank create benign --category other --action allow")
            created = run(
                "HASHSVC_KEY=$OPS hashsvc webhook add $HOOK --event block --event review --event review_resolved"
            )
            receiver.secret = created.rsplit(": ", 1)[1].strip()
            shown[-1] = shown[-1].replace(receiver.secret, "$WEBHOOK_SECRET")
            hidden[receiver.secret] = "WEBHOOK_SECRET"
            run("HASHSVC_KEY=$OPS hashsvc webhook test 1")
            curl = 'curl -s -H "Authorization: Bearer '
            run(
                f'{curl}$ANALYST" -H "Content-Type: application/json" $API/v1/banks/needs-review/items '
                f'-d \'{{"hashes": {{"pdq": "{PDQ}"}}, "reference": "partner-17"}}\''
            )
            time.sleep(1.0)  # the change-log poll (0.25 s) makes the item matchable
            match = (
                f'{curl}$PIPELINE" -H "Content-Type: application/json" $API/v1/match/hashes '
                f'-d \'{{"pdq": "{NEAR}", "content_id": "post-8812", "metadata": {{"uploader": "u-1931"}}}}\''
            )
            run(match)
            run("hashsvc events")
            run("hashsvc review list")
            run("hashsvc review claim 1")
            run('hashsvc review resolve 1 --resolution false_positive --allowlist-bank benign --reason "stock photo"')
            time.sleep(1.0)
            run(match)
            run("hashsvc events")
            receiver.wait_for(3, 30)  # the test request, the review and its resolution
            run(
                f"{curl}$OPS\" $API/v1/webhooks/1/deliveries | python3 -c 'import json,sys; "
                '[print(d["id"], d["event_type"], d["status"], d["attempts"], d["idempotency_key"]) '
                'for d in json.load(sys.stdin)["deliveries"]]\''
            )
            received = [
                f"{r['event']} {'(a test key)' if r['event'] == 'test' else r['key']} "
                f"content_id={r['body']['event'].get('content_id')}"
                for r in receiver.requests
            ]
            shown.append("$ # what the receiver got (signatures verified):\n" + "\n".join(received))
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    text = "\n".join(shown)
    text = re.sub(r"hashsvc-demo-[a-z0-9_]+", "hashsvc-demo", text)
    text = _TABLE_TIME.sub("YYYY-MM-DDThh:mm:ss", stable(text))
    return _DURATION.sub("… ms)", _OTHER_TIME.sub("…", text))


def main() -> None:
    print("```console\n" + session() + "\n```")


if __name__ == "__main__":
    main()
