#!/usr/bin/env python
"""Django's command-line utility for the example project.

Serve the project with aiowsgi, from the repository root::

    aiowsgi serve mysite.wsgi:application --app-dir examples/django_project

``python examples/django_project/manage.py check`` runs Django's system checks;
``migrate`` then ``createsuperuser`` prepare the SQLite database (``DJANGO_DB_PATH``) that
the admin at ``/admin/`` uses.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
