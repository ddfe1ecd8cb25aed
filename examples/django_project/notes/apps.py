"""The ``notes`` app's configuration."""

from __future__ import annotations

from django.apps import AppConfig


class NotesConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    name = "notes"
