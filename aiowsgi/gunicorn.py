"""aiowsgi as a gunicorn worker: ``gunicorn -k aiowsgi.gunicorn.Worker myproject.wsgi``.

For teams that keep gunicorn's arbiter (its process management, hooks and config files):
each gunicorn worker process runs an aiowsgi server on the arbiter's listening sockets.
Honoured: the heartbeat (the worker reports to the arbiter from its event loop, so a busy
application thread never makes it look dead), ``--threads``, ``--keep-alive``,
``--graceful-timeout``, ``--max-requests`` (with jitter, counted exactly), ``--worker-connections``,
``--limit-request-line`` and ``--limit-request-fields``, and graceful reload (SIGHUP on the
arbiter; SIGTERM on a worker drains it).  gunicorn is an optional extra:
``pip install 'aiowsgi-server[gunicorn]'``.
"""

from __future__ import annotations

import asyncio
import os
from types import FrameType
from typing import Any

from gunicorn.workers.base import Worker as _GunicornWorker

from .config import Config
from .runner import loop_factory
from .server import Server


def config_from(cfg: Any) -> Config:
    """The aiowsgi options that match gunicorn's settings."""
    defaults = Config()
    return Config(
        threads=max(1, cfg.threads),
        keepalive_timeout=float(cfg.keepalive) if cfg.keepalive > 0 else 0.001,
        graceful_timeout=float(cfg.graceful_timeout),
        max_connections=cfg.worker_connections,
        max_request_line=cfg.limit_request_line or defaults.max_request_line,
        max_header_count=cfg.limit_request_fields or defaults.max_header_count,
        access_log=False,  # gunicorn users configure their own access log
    )


class Worker(_GunicornWorker):  # type: ignore[misc]
    _quick = False

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT/SIGQUIT: stop at once (gunicorn's meaning), without exiting mid-loop."""
        self.alive = False
        self._quick = True
        self.cfg.worker_int(self)

    def run(self) -> None:
        with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        # aiowsgi owns duplicates of the arbiter's sockets, the arbiter keeps its own
        binds = tuple(f"fd://{os.dup(sock.fileno())}" for sock in self.sockets)
        config = config_from(self.cfg).replace(bind=binds, max_requests=self.max_requests)
        server = Server(self.wsgi, config)
        interval = max(0.05, min(1.0, self.timeout / 4)) if self.timeout else 1.0
        async with server:
            while self.alive and server.is_serving:
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                await asyncio.sleep(interval)
            if self._quick:
                server.abort()
            self.notify()
            await server.shutdown()


__all__ = ["Worker", "config_from"]

