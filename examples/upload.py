"""An upload endpoint that hashes the request body: ``aiowsgi serve examples.upload:app``.

Open http://127.0.0.1:8000/ to pick a file in a form, or send one with curl::

    curl --data-binary @some.iso http://127.0.0.1:8000/     # POST
    curl -T some.iso http://127.0.0.1:8000/                 # PUT

The answer is JSON: the body's size and SHA-256, e.g.
``{"size": 1048576, "sha256": "...", "content_type": "application/octet-stream"}``.

The body is the raw file (no multipart/form-data to take apart): the form's script sends
the chosen file as the request body.  The view reads ``wsgi.input`` in 64 KiB pieces, so
its memory stays flat whatever the size.  aiowsgi has received the whole body before the
view runs: small bodies in memory, larger ones spooled to a temporary file, and bodies
above ``--max-body-size`` (1 GiB by default) refused with 413 before they are read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from wsgiref.types import InputStream, StartResponse, WSGIEnvironment

CHUNK = 64 * 1024

FORM = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Upload to aiowsgi</title></head>
<body>
<h1>Upload a file</h1>
<form id="upload">
  <input type="file" name="file" required>
  <button>Upload</button>
</form>
<pre id="result"></pre>
<script>
  document.getElementById("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = event.target.file.files[0];
    const result = document.getElementById("result");
    result.textContent = "uploading " + file.name + "...";
    // The file itself is the body; fetch sets Content-Length from it.
    const response = await fetch("", {
      method: "POST",
      body: file,
      headers: {"Content-Type": file.type || "application/octet-stream"},
    });
    result.textContent = response.status + " " + (await response.text());
  });
</script>
</body>
</html>
"""


def respond(start_response: StartResponse, status: str, body: bytes, content_type: str,
            extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body))), *(extra or [])])
    return [body]


def answer_json(start_response: StartResponse, status: str, data: object) -> list[bytes]:
    return respond(start_response, status, json.dumps(data).encode() + b"\n",
                   "application/json")


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    if method in {"GET", "HEAD"}:
        return respond(start_response, "200 OK", FORM, "text/html; charset=utf-8")
    if method not in {"POST", "PUT"}:
        return respond(start_response, "405 Method Not Allowed", b"", "text/plain",
                       [("Allow", "GET, HEAD, POST, PUT")])

    # PEP 3333: read no more than CONTENT_LENGTH, unless the server says the input ends
    # by itself (aiowsgi does, and gives a decoded chunked body a CONTENT_LENGTH too).
    length_text = environ.get("CONTENT_LENGTH", "")
    remaining: int | None = int(length_text) if length_text.isdigit() else None
    if remaining is None and not environ.get("wsgi.input_terminated"):
        return answer_json(start_response, "411 Length Required",
                           {"error": "send a Content-Length"})

    stream: InputStream = environ["wsgi.input"]
    digest = hashlib.sha256()
    size = 0
    while remaining is None or remaining > 0:
        chunk = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    if remaining:
        return answer_json(start_response, "400 Bad Request",
                           {"error": f"the body ended {remaining} bytes early"})
    return answer_json(start_response, "200 OK", {
        "size": size,
        "sha256": digest.hexdigest(),
        "content_type": environ.get("CONTENT_TYPE", ""),
    })
