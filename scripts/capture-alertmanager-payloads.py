#!/usr/bin/env python3
"""Capture real Alertmanager webhook bodies into ``tests/fixtures/alertmanager/``.

The alert-intake tests parse what Alertmanager *actually* sends, not what its docs
say it sends, so the samples come from the real binary: this script runs it on
loopback (clustering off, a scratch storage path, a free port) with one webhook
receiver pointing at a tiny HTTP server here that records every body, posts alerts
to Alertmanager's ``/api/v2/alerts`` and saves each notification it triggers:

    firing.json          one alert firing
    resolved.json        the same alert resolved (endsAt in the past)
    refired.json         the same labels firing again, with a new startsAt
    group-firing.json    one group holding two alerts, for two models
    group-partly-resolved.json   that group after one of its alerts resolved

Run it again to regenerate them (Debian: ``apt-get install prometheus-alertmanager``):

    .venv/bin/python scripts/capture-alertmanager-payloads.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """\
route:
  receiver: fairlane
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 24h
receivers:
  - name: fairlane
    webhook_configs:
      - url: {url}
        send_resolved: true
        http_config:
          authorization:
            credentials: fl_example-token-of-an-alert-source
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def capture_server(bodies: queue.Queue[dict[str, Any]]) -> ThreadingHTTPServer:
    """A webhook receiver that queues every JSON body it is sent and answers 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            bodies.put(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the script's output to what it captured

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def alert(name: str, model: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": {"alertname": name, "severity": "critical", "fairlane_model": model},
        "annotations": {
            "summary": f"{model}: approval-rate gap between groups above tolerance",
            "description": "disparate-impact ratio 0.71 (tolerance 0.80) over the last hour",
        },
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=fairness_di_ratio",
        "startsAt": starts.isoformat(),
    }
    if ends is not None:
        body["endsAt"] = ends.isoformat()
    return body


def next_body(bodies: queue.Queue[dict[str, Any]], want: str) -> dict[str, Any]:
    """The next notification whose alerts' statuses read ``want`` (e.g. "firing,resolved")."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            body = bodies.get(timeout=1)
        except queue.Empty:
            continue
        if ",".join(sorted(a["status"] for a in body["alerts"])) == want:
            return body
    raise SystemExit(f"no notification with alerts [{want}] within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/alertmanager")
    args = parser.parse_args()
    binary = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    if binary is None:
        raise SystemExit("no alertmanager binary (apt-get install prometheus-alertmanager)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    version_line = (version.stdout or version.stderr).splitlines()[0]

    bodies: queue.Queue[dict[str, Any]] = queue.Queue()
    receiver = capture_server(bodies)
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "alertmanager.yml"
        config.write_text(CONFIG.format(url=f"http://127.0.0.1:{receiver.server_port}/"))
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={scratch}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--web.external-url=http://alertmanager.example:9093",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            samples = run_scenarios(f"http://127.0.0.1:{port}", bodies)
        finally:
            process.terminate()
            process.wait(timeout=10)
            receiver.shutdown()

    args.out.mkdir(parents=True, exist_ok=True)
    for name, body in samples.items():
        (args.out / f"{name}.json").write_text(json.dumps(body, indent=2) + "\n")
        print(f"{args.out / name}.json: {len(body['alerts'])} alert(s), status {body['status']}")
    (args.out / "README.md").write_text(
        "Webhook bodies captured from the real Alertmanager by "
        "`scripts/capture-alertmanager-payloads.py`\n"
        f"(`{version_line}`, webhook payload version "
        f"{samples['firing']['version']}). Regenerate with that script; do not edit by hand.\n"
    )


def run_scenarios(api: str, bodies: queue.Queue[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=api, timeout=10) as client:
        for _ in range(100):
            try:
                if client.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("alertmanager did not become ready")

        def post(*alerts: dict[str, Any]) -> None:
            client.post("/api/v2/alerts", json=list(alerts)).raise_for_status()

        now = datetime.now(UTC).replace(microsecond=0)
        first = now - timedelta(minutes=10)
        samples: dict[str, dict[str, Any]] = {}
        post(alert("FairnessDisparity", "credit-limit", first))
        samples["firing"] = next_body(bodies, "firing")
        post(alert("FairnessDisparity", "credit-limit", first, now - timedelta(minutes=1)))
        samples["resolved"] = next_body(bodies, "resolved")
        post(alert("FairnessDisparity", "credit-limit", now))
        samples["refired"] = next_body(bodies, "firing")

        pair = [alert("ApprovalRateGap", m, first) for m in ("credit-limit", "mortgage-approval")]
        post(*pair)
        samples["group-firing"] = next_body(bodies, "firing,firing")
        pair[1]["endsAt"] = (now - timedelta(seconds=30)).isoformat()
        post(pair[1])
        samples["group-partly-resolved"] = next_body(bodies, "firing,resolved")
        return samples


if __name__ == "__main__":
    main()
