"""pytest plugin (entry point ``pytest11``, loaded wherever django-mizan-hub
is installed): clears ``mizan_hub.testing.published`` before every test
and provides the ``mizan_hub_published`` fixture.

Works with pytest-django, whose test environment turns mizan-hub's test
mode on (``MIZAN_HUB["TEST_MODE"]`` None, the default)::

    @pytest.mark.django_db(transaction=True)
    def test_save(mizan_hub_published):
        Todo.objects.create(title="x", list_id=1)
        mizan_hub_published.assert_invalidated("list", list_id=1)

Nothing here touches Django at import or in projects that do not use
mizan-hub: the list is only cleared once :mod:`mizan_hub.testing` is loaded.
"""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def _mizan_hub_clear_published():
    testing = sys.modules.get("mizan_hub.testing")
    if testing is not None:
        testing.clear()
    yield


@pytest.fixture
def mizan_hub_published():
    """``mizan_hub.testing.published``, empty: the envelopes this test
    publishes, with ``assert_invalidated(context, **params)``,
    ``assert_not_invalidated(...)`` and ``assert_published(channel,
    type=..., **params)``."""
    from mizan_hub import testing

    testing.clear()
    return testing.published
