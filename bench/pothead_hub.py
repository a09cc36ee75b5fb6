"""POTHEAD's hub (pothead.server's handlers) bound to one host only.

`python -m pothead.server` listens on every interface; the benchmark must only use
loopback, so this starts the same client site and worker listener on --host.
Prints one line when both listen: "pothead hub listening http://HOST:MAIN workers=HOST:W".
"""

import argparse
import asyncio

from aiohttp import web
from pothead import server as pothead_server


async def serve(host, main_port, worker_port):
    loop = asyncio.get_running_loop()
    runner = web.ServerRunner(web.Server(pothead_server.client_handler))
    await runner.setup()
    await web.TCPSite(runner, host=host, port=main_port).start()
    await loop.create_server(
        lambda: pothead_server.ReverseHttp(loop), host=host, port=worker_port
    )
    print(
        f"pothead hub listening http://{host}:{main_port} workers={host}:{worker_port}",
        flush=True,
    )
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--main-port", type=int, required=True)
    parser.add_argument("--worker-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.main_port, args.worker_port))


if __name__ == "__main__":
    main()
