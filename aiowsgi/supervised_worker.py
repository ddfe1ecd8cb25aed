"""The entry point of a ``--workers`` worker: ``aiowsgi serve`` that ignores SIGINT.

The supervisor starts each worker as ``python -c "from aiowsgi.supervised_worker import
main; main()" serve APP`` (see :func:`aiowsgi.supervisor.worker_command`).  It lives in
its own module because it runs the command line, which itself starts the supervisor:
neither of those two modules has to import the other.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """A worker: ``aiowsgi serve`` that ignores SIGINT, since the supervisor decides.

    Until the server installs its handlers, Python would turn a SIGINT into a
    KeyboardInterrupt: a traceback, and a worker that did not start.  So the worker
    starts with SIGINT blocked (see ``Supervisor.spawn``), and ignores it here first
    thing, which discards one already sent; ignored rather than blocked, it does not stay
    blocked in the threads and processes the application starts.  SIGTERM keeps its
    default until then: it ends the worker quietly.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from .cli import main as serve_command  # after the signal is ignored, as little first

    sys.exit(serve_command())
