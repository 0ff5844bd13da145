"""`python -m devstack up` (make dev) and `python -m devstack demo` (make demo)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from devstack.demo import run_demo
from devstack.gateway import GatewayLimits, NginxMissingError
from devstack.scaffold import ScaffoldError, new_service
from devstack.stack import Ports, Stack, StackError, StackSettings

NEXT_STEPS = """\
Next (docs/new-service.md has the details):
  1. It works as it is: uv run pytest src/shipping/{name}
  2. Replace the packages example with your domain: models.py, api.py, store.py (and its schema).
  3. Name who may call it in charts/{name}/values.yaml (networkPolicy.callers), and let those
     callers reach it (their networkPolicy), its Key Vault secrets and identity in docs/deploy-aks.md.
  4. Add it to devstack's SERVICES to run it with make dev, and to the gateway if it is public."""

TRY_IT = """\
curl -si -X POST {gateway}/api/deliveryrequests -H 'Content-Type: application/json' \\
  -d '{{"ownerId": "alice", "pickupLocation": "47.6205,-122.3493", "dropOffLocation": "47.6097,-122.3331", "packageInfo": {{"size": "Small", "weight": 2.5, "tag": "books"}}}}'"""


def settings_from_environment() -> StackSettings:
    """Ports move with GATEWAY_PORT, DELIVERY_PORT, PACKAGE_PORT and SCHEDULER_PORT; the gateway's
    limits with GATEWAY_MAX_BODY_SIZE, GATEWAY_RATE_LIMIT and GATEWAY_RATE_BURST."""
    default_ports, default_limits = Ports(), GatewayLimits()
    ports = Ports(
        **{
            name: int(os.environ.get(f"{name.upper()}_PORT", getattr(default_ports, name)))
            for name in ("gateway", "delivery", "package", "scheduler")
        }
    )
    limits = GatewayLimits(
        max_body_size=os.environ.get("GATEWAY_MAX_BODY_SIZE", default_limits.max_body_size),
        rate_limit=os.environ.get("GATEWAY_RATE_LIMIT", default_limits.rate_limit),
        rate_burst=int(os.environ.get("GATEWAY_RATE_BURST", default_limits.rate_burst)),
    )
    return StackSettings(
        data_dir=Path(os.environ.get("DATA_DIR", ".data")), ports=ports, limits=limits
    )


def up(settings: StackSettings) -> int:
    stack = Stack(settings)
    print("starting nginx and the delivery, package and scheduler services ...", flush=True)
    stack.start()
    print(
        f"\nDrone Delivery is running.\n"
        f"  gateway    {stack.gateway_url}   (the public API)\n"
        + "".join(
            f"  {name:<10} {stack.service_url(name)}   (docs: {stack.service_url(name)}/docs)\n"
            for name in ("delivery", "package", "scheduler")
        )
        + f"  logs       {stack.log_dir}/<name>.log\n\n"
        f"Try it:\n{TRY_IT.format(gateway=stack.gateway_url)}\n\n"
        f"Or watch a few deliveries fly: make demo\n"
        f"Ctrl-C stops everything.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        stack.stop()
    return 0


def create_service(name: str) -> int:
    try:
        created = new_service(Path.cwd(), name)
    except ScaffoldError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("created:\n" + "".join(f"  {path.relative_to(Path.cwd())}\n" for path in created))
    print(NEXT_STEPS.format(name=name))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole system until Ctrl-C")
    demo = commands.add_parser("demo", help="send a few deliveries and watch them fly")
    demo.add_argument("--deliveries", type=int, default=5)
    demo.add_argument("--timeout", type=float, default=120)
    scaffold = commands.add_parser("new-service", help="copy the template service under a new name")
    scaffold.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "new-service":
        return create_service(args.name)
    settings = settings_from_environment()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as cleanly as on Ctrl-C
    try:
        if args.command == "up":
            return up(settings)
        return run_demo(settings, deliveries=args.deliveries, timeout=args.timeout)
    except (NginxMissingError, StackError) as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
