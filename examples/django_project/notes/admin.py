"""Notes in the admin: what the browser test logs in to add."""

from __future__ import annotations

from django.contrib import admin

from .models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):  # type: ignore[misc]  # Django ships no types
    list_display = ("title", "created")
    search_fields = ("title", "text")
