"""The declarative model map: saves and deletes invalidate after commit."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from mizan_hub import receivers
from tests.testapp.models import Note, Todo

pytestmark = pytest.mark.django_db(transaction=True)


def contexts(envs):
    return [entry for env in envs for entry in env["invalidate"]]


def test_save_and_delete_publish_the_mapped_contexts(r, events):
    todo = Todo.objects.create(title="milk", list_id=3)
    assert contexts(events.envelopes()) == [
        "todos", {"context": "todo", "params": {"id": str(todo.pk)}},
        {"context": "list", "params": {"list_id": "3"}}]
    pk = todo.pk
    todo.delete()  # Django sets pk to None after post_delete
    assert contexts(events.envelopes())[1] == {"context": "todo", "params": {"id": str(pk)}}


def test_saves_in_a_transaction_are_one_envelope_and_rollback_is_none(r, events):
    with transaction.atomic():
        a = Todo.objects.create(title="a")
        a.done = True
        a.save()
        Todo.objects.create(title="b")
    [env] = events.envelopes()
    assert env["invalidate"][0] == "todos" and len(env["invalidate"]) == 4  # todos, a, b, list 1
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Todo.objects.create(title="c")
            raise RuntimeError
    assert events.texts() == []


def test_moving_to_other_params_invalidates_the_old_ones_too(r, events):
    todo = Todo.objects.create(title="milk", list_id=1)
    events.envelopes()
    loaded = Todo.objects.get(pk=todo.pk)
    loaded.list_id = 2
    loaded.save()
    lists = [e for e in contexts(events.envelopes()) if isinstance(e, dict) and e["context"] == "list"]
    assert lists == [{"context": "list", "params": {"list_id": "2"}},
                     {"context": "list", "params": {"list_id": "1"}}]


def test_watch_decorator_and_related_sources(r, events):
    user = User.objects.create(username="u")
    receivers.watch(Note, ("notes", {"owner": "owner"}), ("note", {"len": lambda n: len(n.text)}))
    try:
        Note.objects.create(text="abc", owner=user)
        assert contexts(events.envelopes()) == [
            {"context": "notes", "params": {"owner": str(user.pk)}},
            {"context": "note", "params": {"len": "3"}}]
    finally:
        receivers.unwatch(Note)
    Note.objects.create(text="x")
    assert events.texts() == []
