"""A small Flask application: ``aiowsgi serve examples.flask_app:app``."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello from Flask"


@app.post("/greet")
def greet() -> dict[str, str]:
    return {"greeting": f"Hello, {request.form['name']}!"}


@app.get("/count")
def count() -> Response:
    def numbers() -> Iterator[str]:
        for n in range(1, 4):
            yield f"{n}\n"

    return Response(stream_with_context(numbers()), mimetype="text/plain")


@app.get("/divide/<int:n>")
def divide(n: int) -> str:
    return str(100 // n)  # /divide/0 raises ZeroDivisionError: a bug in a view
