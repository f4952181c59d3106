from datetime import date

import pytest


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker):
    """The demo data set (every admin has rows), loaded once per module and flushed after."""
    from demo.data import seed_demo

    with django_db_blocker.unblock():
        seed_demo(today=date(2026, 6, 15))
    yield
    with django_db_blocker.unblock():
        from django.core.management import call_command

        call_command("flush", "--noinput", verbosity=0)  # its post_migrate re-creates permissions and groups
