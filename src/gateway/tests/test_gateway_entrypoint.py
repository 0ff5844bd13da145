"""The gateway image's entrypoint, run here with the real template and the machine's nginx.

It must render exactly what the local run renders (so what the gateway tests prove is what runs in
the cluster), write nothing but its runtime directory, keep nginx in the foreground as the
process Kubernetes signals, and let nginx finish gracefully on SIGQUIT (the chart's preStop).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devstack.gateway import GatewayLimits, gateway_values, render
from servicekit.testing import free_port

ROOT = Path(__file__).resolve().parents[3]
ENTRYPOINT = ROOT / "src" / "gateway" / "entrypoint.sh"
TEMPLATE = ROOT / "src" / "gateway" / "nginx.conf.template"


def needed(tool: str) -> str:
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin")
    if not found:
        reason = f"{tool} is needed to run the gateway's entrypoint (Debian: nginx, gettext-base)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_the_entrypoint_renders_the_template_and_nginx_quits_gracefully(tmp_path: Path) -> None:
    nginx = needed("nginx")
    needed("envsubst")
    runtime = tmp_path / "run"
    values = gateway_values(
        listen_port=free_port(),
        delivery_upstream="127.0.0.1:9",
        runtime_dir=runtime,
        limits=GatewayLimits(max_body_size="16k", rate_limit="20r/s", rate_burst=40),
    )
    env = {
        "PATH": f"{Path(nginx).parent}{os.pathsep}{os.environ['PATH']}",
        "GATEWAY_TEMPLATE": str(TEMPLATE),
        **values,
    }
    log = tmp_path / "entrypoint.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["/bin/sh", str(ENTRYPOINT)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{values['GATEWAY_LISTEN_PORT']}/healthz"
        deadline = time.monotonic() + 10
        while True:
            try:
                assert httpx.get(url).status_code == 200
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the entrypoint did not start nginx:\n{log.read_text()}")
                time.sleep(0.05)

        assert (runtime / "nginx.conf").read_text() == render(values)
        # exec: the entrypoint's process is nginx's master now, the one Kubernetes signals.
        assert (runtime / "nginx.pid").read_text().strip() == str(process.pid)

        process.send_signal(signal.SIGQUIT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
