"""mizan_hub.E015 (a database check) and the error a missing outbox table
gives at run time: what a user sees before ``manage.py migrate``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

import mizan_hub
from mizan_hub import checks, outbox
from mizan_hub.models import OutboxEntry

DJANGO = Path(__file__).resolve().parents[1]


def manage(tmp_path, *args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "MIZAN_HUB_TEST_DB": str(tmp_path / "db.sqlite3")}
    return subprocess.run([sys.executable, "-m", "django", *args], cwd=DJANGO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_database_reports_it_and_migrate_is_not_stopped_by_it(tmp_path):
    before = manage(tmp_path, "check", "--database", "default")
    assert before.returncode == 1
    assert "mizan_hub.E015" in before.stderr
    assert "the outbox table mizan_hub_outbox does not exist on database 'default'" in before.stderr
    assert "run `manage.py migrate --database default`" in before.stderr
    # without --database Django runs no database check: no false alarm
    assert "E015" not in manage(tmp_path, "check").stderr
    migrate = manage(tmp_path, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    after = manage(tmp_path, "check", "--database", "default")
    assert after.returncode == 0 and "E015" not in after.stderr, after.stderr


@contextlib.contextmanager
def without_the_table():
    """Drops the outbox table and its migration record; puts both back."""
    recorded = list(MigrationRecorder.Migration.objects.filter(app="mizan_hub")
                    .values_list("name", flat=True))
    with connection.schema_editor() as editor:
        editor.delete_model(OutboxEntry)
    MigrationRecorder.Migration.objects.filter(app="mizan_hub").delete()
    try:
        yield
    finally:
        if OutboxEntry._meta.db_table not in connection.introspection.table_names():
            with connection.schema_editor() as editor:
                editor.create_model(OutboxEntry)
        for name in recorded:
            MigrationRecorder.Migration.objects.get_or_create(app="mizan_hub", name=name)


@pytest.mark.django_db(transaction=True)
def test_publishing_and_the_relay_name_the_fix(r):
    with without_the_table():
        errors = checks.check_outbox_table(databases=["default"])
        assert [e.id for e in errors] == ["mizan_hub.E015"]
        with pytest.raises(outbox.OutboxTableMissing, match=r"run `manage.py migrate`"):
            mizan_hub.invalidate("todos")
        with pytest.raises(outbox.OutboxTableMissing):
            mizan_hub.publish("ticker", {}, 1)
        with pytest.raises(CommandError, match=r"outbox table mizan_hub_outbox does not exist "
                                               r"on database 'default'.*manage.py migrate"):
            call_command("mizan_hub_relay", "--once")


@pytest.mark.django_db(transaction=True)
def test_an_unapplied_migration_is_reported_and_migrate_runs(r):
    with without_the_table():
        with connection.schema_editor() as editor:
            editor.create_model(OutboxEntry)  # the table, but no migration record
        [error] = checks.check_outbox_table(databases=["default"])
        assert "mizan_hub migration(s) 0001_initial not applied on database 'default'" in error.msg
        assert checks.check_outbox_table(databases=None) == []
        with connection.schema_editor() as editor:
            editor.delete_model(OutboxEntry)
        # migrate runs the database checks first: E015 must not stop it
        call_command("migrate", "mizan_hub", verbosity=0, skip_checks=False)
        assert checks.check_outbox_table(databases=["default"]) == []
