"""URLs of the benchmark's Django site."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("items/", views.item_list, name="item-list"),
]
