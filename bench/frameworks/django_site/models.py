"""The one table of the benchmark's Django site."""

from __future__ import annotations

from django.db import models


class Item(models.Model):  # type: ignore[misc]  # Django ships no types
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=40)
    price_cents = models.PositiveIntegerField()
    stock = models.PositiveIntegerField()

    def __str__(self) -> str:
        return str(self.name)
