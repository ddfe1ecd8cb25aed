"""The ``django_site_item`` table: written by ``makemigrations django_site`` (Django 5.2),
reformatted for ruff (tuples instead of lists, which Django accepts)."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no types
    initial = True

    dependencies = ()

    operations = (
        migrations.CreateModel(
            name="Item",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                           serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("category", models.CharField(max_length=40)),
                ("price_cents", models.PositiveIntegerField()),
                ("stock", models.PositiveIntegerField()),
            ],
        ),
    )
