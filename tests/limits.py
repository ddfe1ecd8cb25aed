"""The parser's limits as a server applies them: from ``Config()``, never restated.

``aiowsgi.http11`` has no defaults of its own for its limits (the connection passes every
one from the server's Config), so a test of the parser passes them the same way:
``parse_head(head, **limits(parse_head))``, ``ChunkedDecoder(**limits(ChunkedDecoder,
max_body_size=10))``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from aiowsgi import Config

DEFAULTS = Config()


def limits(parser: Callable[..., object], **changes: int) -> dict[str, int]:
    """The keyword-only arguments of ``parser`` (each an option of Config of the same
    name), at the default options' values except for ``changes``."""
    names = [parameter.name for parameter in inspect.signature(parser).parameters.values()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{parser.__name__} has no limit {', '.join(sorted(unknown))}")
    return {name: changes.get(name, getattr(DEFAULTS, name)) for name in names}
