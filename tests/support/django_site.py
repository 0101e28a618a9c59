"""A minimal Django configuration shared by every test that runs Django in this process.

Django's settings can be configured once per process: call :func:`configure`, then
change what a test needs with ``django.test.override_settings`` (``ROOT_URLCONF``,
``MIDDLEWARE``, ``FFRTMP_RATELIMIT``, ...).
"""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []


def configure() -> None:
    """Configure Django for the tests (once; later calls do nothing)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.support.django_site",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()
