"""The one view of the benchmark's Django site."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from bench.frameworks import DJANGO_PAGE_ROWS

from .models import Item


def item_list(request: HttpRequest) -> HttpResponse:
    """A page of items (one ORM query), with this session's visit counter.

    Reading ``request.session`` loads the session row (one SELECT); changing it makes
    ``SessionMiddleware`` save it (one UPDATE) and send the cookie again.
    """
    visits = int(request.session.get("visits", 0)) + 1
    request.session["visits"] = visits
    items = Item.objects.order_by("id")[:DJANGO_PAGE_ROWS]
    return render(request, "django_site/items.html", {"items": items, "visits": visits})
