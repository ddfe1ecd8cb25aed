"""File responses: files and file-likes that record when the server closes them, and an
app that answers with ``wsgi.file_wrapper``."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class TrackedFile(io.FileIO):
    """A real file (it has a fileno) that records when it is closed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self.close_event = threading.Event()

    def close(self) -> None:
        self.close_event.set()
        super().close()


class TrackedBytesIO(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.close_event = threading.Event()

    def close(self) -> None:
        self.close_event.set()
        super().close()


def file_app(opened: list[Any], make: Callable[[], Any], *, offset: int = 0,
             headers: list[tuple[str, str]] | None = None) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        f = make()
        opened.append(f)  # also keeps it alive: only the server may close it
        if offset:
            f.seek(offset)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  *(headers or [])])
        return environ["wsgi.file_wrapper"](f)

    return app
