"""The gateway's nginx config, rendered from the one template the cluster uses too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "gateway" / "nginx.conf.template"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class NginxMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class GatewayLimits:
    """The offloading limits; the defaults suit one person trying the system."""

    max_body_size: str = "16k"
    rate_limit: str = "50r/s"
    rate_burst: int = 100


def render(values: Mapping[str, str], template: Path = TEMPLATE) -> str:
    """Substitute `${NAME}` placeholders, as envsubst does in the gateway image; all must be given."""
    text = template.read_text()
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if missing:
        raise KeyError(f"the gateway template needs values for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


# Locally the gateway's clients connect directly; only a proxy on this machine is believed.
LOCAL_PROXIES = "127.0.0.1/32"


def gateway_values(
    *,
    listen_port: int,
    delivery_upstream: str,
    runtime_dir: Path,
    limits: GatewayLimits,
    trusted_proxies: str = LOCAL_PROXIES,
) -> dict[str, str]:
    return {
        "GATEWAY_LISTEN_PORT": str(listen_port),
        "DELIVERY_UPSTREAM": delivery_upstream,
        "GATEWAY_RUNTIME_DIR": str(runtime_dir),
        "GATEWAY_MAX_BODY_SIZE": limits.max_body_size,
        "GATEWAY_RATE_LIMIT": limits.rate_limit,
        "GATEWAY_RATE_BURST": str(limits.rate_burst),
        "GATEWAY_TRUSTED_PROXIES": trusted_proxies,
    }


def find_nginx(*, install: bool = True) -> str:
    """The nginx binary; on Debian/Ubuntu as root it is installed when missing."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    apt_get = shutil.which("apt-get")
    if install and apt_get and os.geteuid() == 0:
        print("nginx is missing: installing it with apt-get (Debian package nginx)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt_get, "update", "-qq"], check=True, env=env)
        subprocess.run(
            [apt_get, "install", "-y", "-qq", "--no-install-recommends", "nginx"],
            check=True,
            env=env,
        )
        return find_nginx(install=False)
    raise NginxMissingError(
        "nginx is needed for the gateway and was not found. Install it with\n"
        "  sudo apt-get install nginx        (Debian, Ubuntu)\n"
        "  brew install nginx                (macOS)\n"
        "then run the command again."
    )


def write_config(path: Path, values: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Path(values["GATEWAY_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
    path.write_text(render(values))
    return path


def nginx_command(nginx: str, config: Path) -> list[str]:
    # -e stderr: without it nginx tries /var/log/nginx/error.log before reading the config.
    return [nginx, "-e", "stderr", "-c", str(config)]
