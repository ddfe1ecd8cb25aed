"""The ``django`` scenario's site: a minimal but real Django project, and its one app.

- ``settings``: DEBUG off, ALLOWED_HOSTS, the usual middleware with ``SessionMiddleware``
  (database-backed sessions), Django templates, SQLite in WAL mode at the path in
  ``BENCH_DJANGO_DB``;
- ``models``: ``Item``, one table; ``migrations``: its schema;
- ``views``: ``/items/`` counts the visit in the session and renders the first 20 items of one
  ORM query with the template ``templates/django_site/items.html``;
- ``wsgi``: ``application``, what the servers run
  (``aiowsgi serve bench.frameworks.django_site.wsgi:application``);
- ``prepare``: creates the database: migrate, the fixture rows, the benchmark's session.

The site package is its own Django app (label ``django_site``), so the project is one folder.
"""
