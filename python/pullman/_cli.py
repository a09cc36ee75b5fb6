"""What the runners' command lines share: the worker's flags, logging, the app, the worker."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, Optional

from . import _app
from ._interface import Worker


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the flags every runner has. Hub, pool and token default to
    ``PULLMAN_HUB``, ``PULLMAN_POOL`` and ``PULLMAN_TOKEN`` (a token in the environment stays out
    of ``ps``)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    env = os.environ.get
    p.add_argument("app", metavar="MODULE:APP", help="the app, e.g. myproject.wsgi:app or app:create_app()")
    p.add_argument("--hub", default=env("PULLMAN_HUB"), help="tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH (PULLMAN_HUB)")
    p.add_argument("--tls-ca", metavar="FILE", help="for a tls:// hub: PEM authorities that sign its certificate (default: the system's roots)")
    p.add_argument("--tls-cert", metavar="FILE", help="for a tls:// hub whose pool names its workers: this worker's certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    p.add_argument("--pool", default=env("PULLMAN_POOL"), help="the hub's pool to serve (PULLMAN_POOL)")
    p.add_argument("--token", default=env("PULLMAN_TOKEN"), help="the pool's token (PULLMAN_TOKEN)")
    p.add_argument("--name", help="how the hub shows this worker")
    p.add_argument("--shm", action="store_true", help="read requests in shared memory (unix:// hubs)")
    p.add_argument("--cpu-gate", type=float, metavar="SHARE", help="take work only while at most SHARE (0..1] of the CPU is busy")
    p.add_argument("--memory-gate", type=int, metavar="BYTES", help="take work only while at least BYTES of memory are available")
    p.add_argument("--ready", metavar="MODULE:CALLABLE", help="take work only while CALLABLE() returns true")
    p.add_argument(
        "--redirect-response",
        type=int,
        metavar="PORT",
        help="redirect mode: answer a large 200 with 303 to this worker's own HTTP server on PORT (0: any free port), "
        "which serves the body to the client without the hub",
    )
    p.add_argument("--redirect-min-bytes", type=int, default=64 * 1024, metavar="BYTES", help="the smallest body redirected (default 65536; 0: every 200)")
    p.add_argument("--redirect-expiry", type=float, default=20.0, metavar="SECONDS", help="how long a redirected response waits for its client (default 20)")
    p.add_argument("--redirect-host", metavar="HOST", help="the host in Location (default: this worker's address on its link to the hub)")
    p.add_argument(
        "--forwarded-allow-ips",
        default=env("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        metavar="IPS",
        help="clients (proxies in front of the hub) whose X-Forwarded-Proto sets the scheme: addresses separated "
        "by commas, or * (FORWARDED_ALLOW_IPS; default 127.0.0.1,::1)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag in ("hub", "pool", "token"):
        if not getattr(args, flag):
            p.error(f"--{flag} (or PULLMAN_{flag.upper()}) is required")
    if args.redirect_response is None:
        if args.redirect_host is not None:
            p.error("--redirect-host needs --redirect-response")
    elif not 0 <= args.redirect_response <= 65535:
        p.error("--redirect-response must be a port, 0 to 65535")
    elif args.redirect_min_bytes < 0:
        p.error("--redirect-min-bytes must be at least 0")
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def load_app(spec: str) -> Any:
    """The app, or exit 1 with why not."""
    try:
        return _app.load(spec)
    except _app.AppNotFound as error:
        sys.exit(f"pullman: {error}")


def make_proxies(args: argparse.Namespace) -> Any:
    """The native ``Proxies`` of ``--forwarded-allow-ips``, or exit 1 with why not."""
    from ._native import Proxies  # type: ignore[attr-defined]

    try:
        return Proxies(args.forwarded_allow_ips)
    except ValueError as error:
        sys.exit(f"pullman: --forwarded-allow-ips: {error}")


def make_worker(args: argparse.Namespace, concurrency: int) -> Worker:
    """The native worker for these flags, or exit 1 if this build has none."""
    try:
        from ._native import Worker as NativeWorker  # type: ignore[attr-defined]
    except ImportError:
        sys.exit("pullman: this build of pullman has no native worker (pullman._native.Worker)")
    ready: Optional[Callable[[], bool]] = load_app(args.ready) if args.ready else None
    try:
        worker = NativeWorker(
            args.hub,
            args.pool,
            args.token,
            concurrency=concurrency,
            shm=args.shm,
            name=args.name,
            mode="respond",
            ready=ready,
            cpu_gate=args.cpu_gate,
            memory_gate=args.memory_gate,
        )
        if args.tls_ca or args.tls_cert:
            worker.tls(ca=args.tls_ca, cert=args.tls_cert, key=args.tls_key)
        if args.redirect_response is not None:
            worker.redirect(
                args.redirect_response,
                host=args.redirect_host,
                min_bytes=args.redirect_min_bytes,
                expiry=args.redirect_expiry,
            )
        worker.check()
    except ValueError as error:
        sys.exit(f"pullman: {error}")
    return worker
