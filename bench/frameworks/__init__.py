"""Real framework applications for the benchmark's ``flask`` and ``django`` scenarios.

They are ordinary, unmodified framework apps (no benchmark code inside the request path),
served by every WSGI server of ``bench/run.py`` as ``MODULE:ATTRIBUTE``:

- ``bench.frameworks.flask_app:app``: a Flask JSON API (``GET /api/items/<id>``);
- ``bench.frameworks.django_site.wsgi:application``: a Django site whose one page lists rows
  of an SQLite table through the ORM, with database-backed sessions.

``bench/where_time_goes.py`` calls them in-process to measure what the framework itself
costs per request.  They need Flask and Django (the ``dev`` extra has them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# What bench/run.py needs to know about them, importable without Flask or Django.

FLASK_APP = "bench.frameworks.flask_app:app"
FLASK_PATH = "/api/items/42"
FLASK_EXPECT = b'"id":42'  # the answer is checked to contain this

DJANGO_APP = "bench.frameworks.django_site.wsgi:application"
DJANGO_SETTINGS = "bench.frameworks.django_site.settings"
DJANGO_PATH = "/items/"
DJANGO_EXPECT = b"<td>Item 20</td>"  # the last row of the page
DJANGO_ITEMS = 200  # fixture rows in the table ...
DJANGO_PAGE_ROWS = 20  # ... of which the page lists the first 20
# The SQLite file of the django scenario.  bench/run.py prepares it (migrate, fixture rows,
# the session below) before the servers start and passes its path in this variable.
DJANGO_DB_ENV = "BENCH_DJANGO_DB"
DJANGO_DB_DEFAULT = Path(tempfile.gettempdir()) / "aiowsgi-bench-django.sqlite3"
# One session, created with the database: every request sends its cookie, so every request
# loads the same session row, bumps its visit counter and saves it (one SELECT and one
# UPDATE).  Without a cookie (wrk keeps none) each request would INSERT a new session
# instead, and the table would grow by as many rows as the server is fast.
DJANGO_SESSION_KEY = "aiowsgibench" + "0" * 20
DJANGO_HEADERS = (("Cookie", f"sessionid={DJANGO_SESSION_KEY}"),)


def django_db_path() -> Path:
    return Path(os.environ.get(DJANGO_DB_ENV) or DJANGO_DB_DEFAULT)
