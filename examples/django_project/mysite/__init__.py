"""A minimal Django project served by aiowsgi: see ``mysite.wsgi``."""
