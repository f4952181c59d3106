from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data set and its commands: the one app allowed to import every other (DESIGN.md §1)."""

    name = "demo"
    verbose_name = "Demo data"
