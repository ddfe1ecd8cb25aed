"""aiowsgi: an asyncio HTTP/1.1 server for WSGI applications.

The event loop owns every socket; the WSGI application runs on a thread pool.
"""

from __future__ import annotations

__version__ = "0.2.0"

from .config import Config, ConfigError
from .runner import run
from .server import Server, serve

__all__ = ["Config", "ConfigError", "Server", "run", "serve", "__version__"]
