"""URLs of the example Django project (served with ``aiowsgi serve mysite.wsgi:application
--app-dir examples/django_project``)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
]
