"""The app's one table: the publishing outbox (:mod:`mizan_hub.outbox`).

A row is one ``invalidate()`` or ``publish()`` call, written in the caller's
database transaction, so it exists exactly when the change that caused it
was committed. A relay publishes it through the publish script and deletes
it once Redis acknowledged it.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxEntry(models.Model):
    KINDS = [("invalidate", "invalidate"), ("message", "message")]

    # The queue order: relays publish pending rows by ascending id.
    id = models.BigAutoField(primary_key=True)
    created = models.DateTimeField(default=timezone.now)
    # Which transaction wrote the row: identical channel messages of one
    # transaction are sent once, as publish() always did.
    txn = models.CharField(max_length=32)
    kind = models.CharField(max_length=10, choices=KINDS)
    # invalidate: the normalized entries (a JSON list); message: a JSON
    # object {"channel", "params", "type", "data"} with "data" the exact
    # JSON text to send, as a string.
    body = models.TextField()
    # Relay attempts that Redis did not answer (the row stays queued).
    attempts = models.PositiveIntegerField(default=0)
    # Set when Redis refused the row for good (not an outage): it leaves the
    # queue and stays here for an operator (mizan_hub_relay --requeue-refused).
    refused = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "mizan_hub_outbox"
        ordering = ["id"]
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox entries"

    def __str__(self) -> str:
        state = "refused" if self.refused else "pending"
        return f"{self.kind} #{self.pk} ({state})"
