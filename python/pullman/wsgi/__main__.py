"""``python -m pullman.wsgi``: a WSGI app as a pullman worker."""

from __future__ import annotations

import sys
from typing import List, Optional

from .. import _cli
from .runner import Runner


def main(argv: Optional[List[str]] = None) -> int:
    p = _cli.parser("python -m pullman.wsgi", "Serve a WSGI app as a worker of a pullman hub.")
    p.add_argument("--threads", type=int, default=1, help="threads running the app")
    p.add_argument(
        "--prefetch",
        type=int,
        default=0,
        metavar="N",
        help="requests held beyond --threads, so that a thread that frees finds the next one here (default 0)",
    )
    p.add_argument("--max-requests", type=int, default=0, metavar="N", help="drain and exit 0 after N requests (0: never)")
    p.add_argument("--max-requests-jitter", type=int, default=0, metavar="J", help="add up to J to --max-requests, at random")
    args = p.parse_args(argv)
    _cli.check(p, args)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.prefetch < 0:
        p.error("--prefetch must be at least 0")
    _cli.setup_logging(args.log_level)
    proxies = _cli.make_proxies(args)
    app = _cli.load_app(args.app)
    worker = _cli.make_worker(args, concurrency=args.threads + args.prefetch)
    return Runner(app, worker, args.threads, args.max_requests, args.max_requests_jitter, proxies).run()


if __name__ == "__main__":
    sys.exit(main())
