"""pytest-django: pytest --ds tests.userproject.settings tests/userproject/cases_pytest.py"""

import contextlib

import pytest
from django.db import transaction

import mizan_hub
from tests.testapp.models import Todo


@pytest.mark.django_db(transaction=True)
def test_a_save_and_a_rollback(mizan_hub_published):
    Todo.objects.create(title="milk", list_id=1)
    mizan_hub_published.assert_invalidated("list", list_id=1)
    with contextlib.suppress(RuntimeError), transaction.atomic():
        Todo.objects.create(title="gone", list_id=2)
        raise RuntimeError
    mizan_hub_published.assert_not_invalidated("list", list_id=2)
    assert len(mizan_hub_published) == 1


@pytest.mark.django_db
def test_in_the_test_transaction(mizan_hub_published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        Todo.objects.create(title="eggs", list_id=4)
    mizan_hub_published.assert_invalidated("todo")


def test_a_message_and_a_failure(mizan_hub_published):
    mizan_hub.publish("chat", {"room": "lobby"}, {"text": "hi"})
    mizan_hub_published.assert_published("chat", room="lobby")
    with pytest.raises(AssertionError, match="no invalidation of context 'todos'"):
        mizan_hub_published.assert_invalidated("todos")


def test_cleared_between_tests(mizan_hub_published):
    assert mizan_hub_published == []
