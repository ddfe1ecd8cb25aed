"""The ``flask`` scenario's app: an unmodified Flask JSON API.

``GET /api/items/<id>`` looks the item up in an in-memory catalogue (a dict, as a cache or
a repository layer would hand it over), adds a computed field and a link built with
``url_for``, and answers it with ``jsonify``; an unknown id is a JSON 404.  Nothing here
knows it is benchmarked::

    aiowsgi serve bench.frameworks.flask_app:app

``bench/run.py`` asks for ``FLASK_PATH`` (item 42) and checks that the answer contains
``FLASK_EXPECT`` (both in ``bench/frameworks/__init__.py``).  The answer is the same bytes
every time (Flask's JSON is compact, its keys sorted).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, jsonify, url_for

app = Flask(__name__)

CATEGORIES = ("books", "garden", "kitchen", "music", "toys")
ITEMS: dict[int, dict[str, Any]] = {
    i: {
        "id": i,
        "name": f"Item {i}",
        "category": CATEGORIES[i % len(CATEGORIES)],
        "price_cents": 199 + 37 * i,
        "stock": (i * 7) % 23,
        "tags": [f"tag{i % 3}", f"tag{i % 5}"],
    }
    for i in range(1, 101)
}


@app.get("/api/items/<int:item_id>")
def get_item(item_id: int) -> Response:
    item = ITEMS.get(item_id)
    if item is None:
        abort(404)
    return jsonify({
        **item,
        "price": f"{item['price_cents'] / 100:.2f}",
        "in_stock": item["stock"] > 0,
        "links": {"self": url_for("get_item", item_id=item_id)},
    })  # fmt: skip


@app.errorhandler(404)
def not_found(error: Exception) -> tuple[Response, int]:
    return jsonify({"error": "not found"}), 404
