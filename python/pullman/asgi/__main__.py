"""``python -m pullman.asgi``: an ASGI 3 app as a pullman worker."""

from __future__ import annotations

import sys
from typing import List, Optional

from .. import _cli
from .runner import Runner


def main(argv: Optional[List[str]] = None) -> int:
    p = _cli.parser("python -m pullman.asgi", "Serve an ASGI 3 app as a worker of a pullman hub.")
    p.add_argument("--limit", type=int, default=100, help="requests in flight at once (the worker's credits)")
    p.add_argument("--lifespan", choices=["auto", "off"], default="auto", help="run the lifespan protocol (auto: if the app supports it)")
    args = p.parse_args(argv)
    _cli.check(p, args)
    if args.limit < 1:
        p.error("--limit must be at least 1")
    _cli.setup_logging(args.log_level)
    proxies = _cli.make_proxies(args)
    app = _cli.load_app(args.app)
    worker = _cli.make_worker(args, concurrency=args.limit)
    return Runner(
        app, worker, args.limit, lifespan=args.lifespan == "auto", proxies=proxies
    ).run()


if __name__ == "__main__":
    sys.exit(main())
