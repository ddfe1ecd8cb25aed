"""A small Falcon application: ``aiowsgi serve examples.falcon_app:app``, run from the
repository root.

A ``falcon.App`` is a plain WSGI callable, so aiowsgi serves it as it is: each responder
runs on aiowsgi's thread pool, and a generator given to ``resp.stream`` goes to the client
chunk by chunk as it is produced.
"""

from __future__ import annotations

from collections.abc import Iterator

import falcon


class HelloResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello from Falcon"


class GreetingResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.media = {"greeting": f"Hello, {name}!"}


class CountResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        n = req.get_param_as_int("n", min_value=0, max_value=1000, default=3)

        def numbers() -> Iterator[bytes]:
            for i in range(1, n + 1):
                yield f"{i}\n".encode()

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = numbers()


app = falcon.App()
app.add_route("/", HelloResource())
app.add_route("/greet/{name}", GreetingResource())
app.add_route("/count", CountResource())
