"""Create the benchmark's Django database: ``python -m bench.frameworks.django_site.prepare``.

Into the SQLite file named by ``BENCH_DJANGO_DB`` (default: ``aiowsgi-bench-django.sqlite3``
in the temporary directory): the migrations, ``DJANGO_ITEMS`` fixture rows (replacing any
there are), and the benchmark's session (``DJANGO_SESSION_KEY``, visit counter 0).
``bench/run.py`` runs it once per run, before the servers start; ``bench/where_time_goes.py``
calls :func:`prepare` in its own process.
"""

from __future__ import annotations

import os

from bench.frameworks import DJANGO_ITEMS, DJANGO_SESSION_KEY, DJANGO_SETTINGS, django_db_path

CATEGORIES = ("books", "garden", "kitchen", "music", "toys")


def prepare() -> None:
    """Migrate the database and write the fixture rows and the session (idempotent)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DJANGO_SETTINGS)
    import django

    django.setup()
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.db import connection, transaction

    from .models import Item

    call_command("migrate", verbosity=0, interactive=False)
    with transaction.atomic():
        Item.objects.all().delete()
        Item.objects.bulk_create(
            Item(id=i, name=f"Item {i}", category=CATEGORIES[i % len(CATEGORIES)],
                 price_cents=199 + 37 * i, stock=(i * 7) % 23)
            for i in range(1, DJANGO_ITEMS + 1)
        )
        Session.objects.filter(session_key=DJANGO_SESSION_KEY).delete()
        # As SessionStore.save() writes a session, but under a key of our choosing.
        store = SessionStore()
        Session.objects.create(session_key=DJANGO_SESSION_KEY,
                               session_data=store.encode({"visits": 0}),
                               expire_date=store.get_expiry_date())
    connection.close()


if __name__ == "__main__":
    prepare()
    print(django_db_path())
