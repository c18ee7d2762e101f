"""Django's runner: manage.py test tests.userproject.cases_unittest."""

import contextlib

from django.contrib.auth.models import User
from django.db import transaction
from django.test import TestCase, TransactionTestCase

import mizan_hub
from mizan_hub.testing import MizanHubTestMixin
from tests.testapp.models import Todo


class TodoTests(MizanHubTestMixin, TestCase):
    def test_a_save_is_recorded_at_commit(self):
        with self.captureOnCommitCallbacks(execute=True):
            Todo.objects.create(title="milk", list_id=1)
        self.assertInvalidated("todos")
        self.assertInvalidated("list", list_id=1)
        self.assertNotInvalidated("list", list_id=2)

    def test_b_before_the_commit_the_failure_says_why(self):
        Todo.objects.create(title="eggs", list_id=1)
        with self.assertRaisesMessage(AssertionError, "captureOnCommitCallbacks(execute=True)"):
            self.assertInvalidated("todos")

    def test_c_a_view_and_a_login(self):
        User.objects.create_user("ann", password="pw")
        self.assertTrue(self.client.login(username="ann", password="pw"))
        with self.captureOnCommitCallbacks(execute=True):
            self.client.post("/json/")  # declares todos and todo(id=5) in its JSON
        self.assertInvalidated("todo", id=5)

    def test_d_the_list_was_cleared_between_tests(self):
        self.assertEqual(self.published, [])


class RollbackTests(MizanHubTestMixin, TransactionTestCase):
    def test_a_rollback_drops_what_was_published_in_it(self):
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Todo.objects.create(title="gone", list_id=3)
            raise RuntimeError
        self.assertNotInvalidated()
        with transaction.atomic():
            mizan_hub.publish("chat", {"room": "lobby"}, {"text": "hi"}, type="ChatMessage")
            with contextlib.suppress(RuntimeError), transaction.atomic():
                mizan_hub.publish("chat", {"room": "hall"}, {"text": "no"})
                raise RuntimeError
        [message] = self.assertPublished("chat", type="ChatMessage", room="lobby")
        self.assertEqual(message["data"], {"text": "hi"})
        with self.assertRaisesMessage(AssertionError, "no message to chat(room='hall')"):
            self.assertPublished("chat", room="hall")

    async def test_async_code(self):
        await mizan_hub.ainvalidate(("todo", {"id": 8}))
        self.assertInvalidated("todo", id="8")
