"""The one model of the example: enough for the admin to list, add and change rows."""

from __future__ import annotations

from django.db import models


class Note(models.Model):  # type: ignore[misc]  # Django ships no types
    title = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.title)
