"""URLs of the example Django project (served with ``aiowsgi serve mysite.wsgi:application
--app-dir examples/django_project``).

The admin's CSS and scripts are served by Django only with ``DJANGO_DEBUG=1``
(``staticfiles_urlpatterns`` is empty otherwise), which is enough for a demo.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    *staticfiles_urlpatterns(),
]
