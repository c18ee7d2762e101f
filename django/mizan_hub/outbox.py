"""The publishing outbox: durable ``invalidate()``/``publish()`` (SPEC section 10).

**Writing.** Every call is one row of ``mizan_hub_outbox``
(:class:`~mizan_hub.models.OutboxEntry`), inserted at once on the database
``using`` -- inside the caller's transaction when there is one. The row
therefore commits with the change that caused it, rolls back with it (a
savepoint too), and survives a process that dies right after the commit.
Writing in ``on_commit`` instead would leave a window between the commit and
the write where a crash loses the event.

**Relaying.** A relay reads pending rows by ascending id, publishes them
through the publish script (consecutive invalidations merged into as few
envelopes as the 256-entry limit allows, a transaction's identical messages
once) and deletes a row only after Redis answered the script for it. Three
relays share :func:`relay`:

- in-process, right after the commit (``transaction.on_commit``; at once
  outside a transaction), bounded to :data:`INLINE_MAX_ROWS` rows so that a
  request never drains a large backlog;
- ``manage.py mizan_hub_relay`` (a loop, or ``--once``);
- the inbound worker (``mizan_hub_worker``), between reads.

**Order.** One relay at a time publishes (per database): a process lock,
and on databases with ``SELECT ... FOR UPDATE`` the rows it publishes stay
locked (``NOWAIT``) until it deleted them, so another relay that finds them
locked leaves at once and the holder, which goes on until the queue is
empty, publishes its rows after them. (Not ``SKIP LOCKED``: a relay that
skipped the locked head would publish later rows of the same context
before the earlier ones.) Rows are published in id order, hence
in order per context and per channel. SQLite has no row locks: there the
process lock alone orders relays, and two processes relaying at once may
both publish a row (a duplicate, which at-least-once allows, possibly after
rows behind it).

**Failures.** A Redis outage (no connection, a timeout, ``LOADING``,
``READONLY``, ``OOM``, ...) stops the pass; the row that failed and every
later one stay queued and are retried (``attempts`` counts, ``error`` keeps
the reason). After such a failure the in-process relay of this process
waits :data:`BACKOFF_MIN` .. :data:`BACKOFF_MAX` seconds before trying
again, so requests do not each pay ``REDIS_TIMEOUT`` while Redis is away;
the relay command and the worker keep trying. A row Redis *refuses* (the
script fails: ``WRONGTYPE`` on a key someone overwrote, a script error) or
that cannot be decoded would fail forever: it is taken out of the queue at
once (``refused`` set, the reason in ``error``), logged at ERROR and counted
(``outbox_refused``), and the queue goes on. Refused rows stay in the table
until ``manage.py mizan_hub_relay --requeue-refused`` puts them back (after
the cause is fixed) or someone deletes them.

**STRICT.** The after-commit relay waits for another relay of the process
instead of leaving, never skips for the backoff, and raises
:class:`PublishError` (from the call in autocommit, from the commit
otherwise) when a row of this commit is still queued: the change and the
event are committed all the same and a relay delivers it later.

**Async.** :func:`awrite` (``ainvalidate()``/``apublish()``) writes the row
through ``sync_to_async`` and relays with :func:`arelay` on
``redis.asyncio``; both drive the same publish plan (:func:`_plan`) as the
sync relay.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import (DEFAULT_DB_ALIAS, DatabaseError, OperationalError, ProgrammingError,
                       connections, router, transaction)
from django.utils import timezone

from . import conf, stats
from .batching import _groups, _Row, invalidation_calls, message_call

logger = logging.getLogger("mizan_hub.outbox")

#: Rows read, published and deleted per relay pass (one DB transaction).
BATCH = 256
#: The most rows the in-process relay drains after one commit.
INLINE_MAX_ROWS = 1024
#: Seconds a blocking relay waits for this process's other relay at most.
LOCK_TIMEOUT = 10.0
#: Seconds the in-process relay pauses after Redis failed (doubling).
BACKOFF_MIN = 0.5
BACKOFF_MAX = 5.0

# Error replies that mean "Redis cannot take it now", not "never": the row
# stays queued. redis-py maps some of them to ConnectionError subclasses
# (LOADING, max clients) or ResponseError subclasses (READONLY, NOSCRIPT...);
# the others keep their code as the first word of the message.
_TRANSIENT_CODES = ("LOADING", "BUSY", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN",
                    "CLUSTERDOWN", "NOREPLICAS", "MISCONF", "NOPERM", "NOAUTH", "WRONGPASS",
                    "EXECABORT")


class PublishError(Exception):
    """A publish could not reach Redis (raised only when ``STRICT``)."""


class OutboxTableMissing(ProgrammingError):
    """The outbox table does not exist: ``manage.py migrate`` was not run
    (a database error still, so what caught the driver's error catches it)."""

    def __init__(self, alias: str, table: str = "mizan_hub_outbox") -> None:
        super().__init__(f"mizan-hub: the outbox table {table} does not exist on database "
                         f"{alias!r}, so invalidate()/publish() cannot queue events: run "
                         f"`manage.py migrate` (`manage.py check --database {alias}` reports "
                         "it as mizan_hub.E015)")
        self.alias = alias


def _table_missing(exc: DatabaseError) -> bool:
    """Whether a database error says that the outbox table does not exist
    (SQLite, PostgreSQL 42P01, MySQL 1146, Oracle ORA-00942)."""
    cause = exc.__cause__
    if getattr(cause, "pgcode", None) == "42P01" or getattr(cause, "sqlstate", None) == "42P01":
        return True
    if getattr(cause, "args", None) and cause.args[0] == 1146:
        return True
    text = str(exc).lower()
    return "ora-00942" in text or (
        _model()._meta.db_table in text
        and any(w in text for w in ("no such table", "does not exist", "doesn't exist")))


def _needs_table(func):
    """Turns "no such table" from ``func(alias, ...)`` into
    :class:`OutboxTableMissing`, which names the fix."""
    @functools.wraps(func)
    def wrapper(alias: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(alias, *args, **kwargs)
        except DatabaseError as exc:
            if _table_missing(exc):
                raise OutboxTableMissing(alias, _model()._meta.db_table) from exc
            raise
    return wrapper


def transient(exc: redis.RedisError) -> bool:
    """Whether a Redis error is an outage (retry) rather than a refusal."""
    if isinstance(exc, redis.DataError):
        return False  # refused by redis-py itself: the arguments cannot be sent
    if not isinstance(exc, redis.ResponseError) or type(exc) is not redis.ResponseError:
        return True  # connection errors, timeouts, and the classified replies
    text = str(exc).lstrip("-")
    return text.split(" ", 1)[0].upper() in _TRANSIENT_CODES


def _model():
    from .models import OutboxEntry
    return OutboxEntry


# The three statements of the normal path (insert in the transaction; read
# the queue's head and delete what Redis took after the commit) are plain
# SQL on the backends that share this dialect: the ORM spends ~0.2-0.5 ms
# compiling each of them, ten times what SQLite takes to run them
# (bench/publish-path). Other backends use the ORM.
_PLAIN_SQL_VENDORS = ("sqlite", "postgresql", "mysql")


@functools.lru_cache(maxsize=None)
def _names(alias: str) -> dict[str, str]:
    qn = connections[alias].ops.quote_name
    model = _model()
    names = {f.name: qn(f.column) for f in model._meta.concrete_fields}
    names["table"] = qn(model._meta.db_table)
    return names


@_needs_table
def _insert(alias: str, txn: str, kind: str, body: str) -> int:
    connection = connections[alias]
    if connection.vendor not in _PLAIN_SQL_VENDORS:
        return _model().objects.using(alias).create(txn=txn, kind=kind, body=body).pk
    n = _names(alias)
    sql = (f"INSERT INTO {n['table']} ({n['created']}, {n['txn']}, {n['kind']}, {n['body']}, "
           f"{n['attempts']}, {n['error']}) VALUES (%s, %s, %s, %s, 0, '')")
    params = [connection.ops.adapt_datetimefield_value(timezone.now()), txn, kind, body]
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(f"{sql} RETURNING {n['id']}", params)
            return cursor.fetchone()[0]
        cursor.execute(sql, params)
        return cursor.lastrowid


@_needs_table
def _head(alias: str, want: int, *, lock: bool, nowait: bool) -> list[_Row]:
    """The first ``want`` pending rows, locked FOR UPDATE when ``lock``."""
    connection = connections[alias]
    if connection.vendor in _PLAIN_SQL_VENDORS:
        n = _names(alias)
        sql = (f"SELECT {n['id']}, {n['txn']}, {n['kind']}, {n['body']} FROM {n['table']} "
               f"WHERE {n['refused']} IS NULL ORDER BY {n['id']} LIMIT %s")
        if lock:
            sql += " " + connection.ops.for_update_sql(nowait=nowait)
        with connection.cursor() as cursor:
            cursor.execute(sql, [want])
            return [_Row(*row) for row in cursor.fetchall()]
    queue = _pending(alias).values_list("pk", "txn", "kind", "body")
    if not lock:
        return [_Row(*row) for row in queue[:want]]
    if connection.features.supports_select_for_update_with_limit:
        return [_Row(*row) for row in queue.select_for_update(nowait=nowait)[:want]]
    ids = list(queue.values_list("pk", flat=True)[:want])
    return [_Row(*row) for row in queue.filter(pk__in=ids).select_for_update(nowait=nowait)]


def _delete(alias: str, ids: list[int]) -> None:
    connection = connections[alias]
    if connection.vendor not in _PLAIN_SQL_VENDORS:
        _model().objects.using(alias).filter(pk__in=ids).delete()
        return
    n = _names(alias)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {n['table']} WHERE {n['id']} IN "
                       f"({', '.join(['%s'] * len(ids))})", ids)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

class _Txn:
    """The rows this thread wrote in the current transaction of one database."""

    __slots__ = ("token", "ids")

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.ids: list[int] = []


_local = threading.local()


def write(kind: str, body: str, using: str | None = None) -> None:
    """Queue one event in the current transaction of ``using`` (or commit
    it at once in autocommit) and relay it right after the commit."""
    alias = using or DEFAULT_DB_ALIAS
    state, in_transaction = _record(kind, body, alias)
    if in_transaction or transaction.get_autocommit(using=alias):
        # Runs at once in autocommit. Every call registers its own callback:
        # a savepoint rolled back discards its callbacks, not the others.
        transaction.on_commit(functools.partial(_committed, alias, state), using=alias)
    # else: manual transaction management (set_autocommit(False)): the row
    # commits with the caller's commit() and the relay command sends it.


async def awrite(kind: str, body: str, using: str | None = None) -> None:
    """:func:`write` for async code. The row is written by the thread that
    runs this request's sync code (``sync_to_async``, thread-sensitive): in
    its transaction when it is in one -- relayed by that transaction's
    ``on_commit`` like :func:`write` -- else at once, and then relayed here
    with ``redis.asyncio``."""
    from asgiref.sync import sync_to_async

    alias = using or DEFAULT_DB_ALIAS

    def record() -> _Txn | None:
        state, in_transaction = _record(kind, body, alias)
        if in_transaction:
            transaction.on_commit(functools.partial(_committed, alias, state), using=alias)
            return None
        return state if transaction.get_autocommit(using=alias) else None

    state = await sync_to_async(record)()
    if state is not None:
        await _acommitted(alias, state)


def _record(kind: str, body: str, alias: str) -> tuple[_Txn, bool]:
    connection = transaction.get_connection(alias)
    txns = _local.__dict__.setdefault("txns", {})
    state = txns.get(alias)
    in_transaction = connection.in_atomic_block
    if state is None or not in_transaction:
        # A transaction rolled back leaves its state behind: reusing it is
        # harmless (its rows are gone, its ids are only a hint).
        state = txns[alias] = _Txn()
    pk = _insert(alias, state.token, kind, body)
    stats.incr("outbox_written")
    state.ids.append(pk)
    return state, in_transaction


def _take(alias: str, state: _Txn) -> list[int]:
    """The ids a commit's relay is for (empty for all but its first callback)."""
    ids, state.ids = state.ids, []
    txns = _local.__dict__.get("txns", {})
    if txns.get(alias) is state:
        del txns[alias]
    return ids


def _committed(alias: str, state: _Txn) -> None:
    """After the commit: relay what this transaction wrote (and whatever is
    older). The first callback of a commit does it for all of them."""
    ids = _take(alias, state)
    if not ids:
        return
    strict = conf.get("STRICT")
    try:
        result = relay(alias, block=strict, max_rows=INLINE_MAX_ROWS, inline=not strict)
        if strict:
            _check_delivered(alias, ids, result)
    except PublishError:
        raise
    except Exception as exc:  # the data is committed: never fail the request for this
        _relay_failed(exc, ids, strict)


async def _acommitted(alias: str, state: _Txn) -> None:
    from asgiref.sync import sync_to_async

    ids = _take(alias, state)
    strict = conf.get("STRICT")
    try:
        result = await arelay(alias, max_rows=INLINE_MAX_ROWS, inline=not strict)
        if strict:
            await sync_to_async(_check_delivered)(alias, ids, result)
    except PublishError:
        raise
    except Exception as exc:
        _relay_failed(exc, ids, strict)


def _check_delivered(alias: str, ids: list[int], result: "RelayResult") -> None:
    """STRICT: raise unless every row of ``ids`` left the queue delivered."""
    left = _model().objects.using(alias).filter(pk__in=ids)
    if left.exists():
        reason = result.error or "the relay did not reach it"
        raise PublishError(f"{len(ids)} event(s) committed but not published: {reason}; "
                           "kept in the outbox, the relay will deliver them")


def _relay_failed(exc: Exception, ids: list[int], strict: bool) -> None:
    stats.incr("publish_failures")
    logger.error("mizan-hub: relay after commit failed (%s); %d event(s) stay queued",
                 exc, len(ids), exc_info=True)
    if strict:
        raise PublishError(f"events committed but not published: {exc}") from exc


# --------------------------------------------------------------------------
# Relaying
# --------------------------------------------------------------------------

@dataclass
class RelayResult:
    published: int = 0  # rows deleted after Redis acknowledged them
    refused: int = 0  # rows taken out of the queue for good
    error: str | None = None  # why the relay stopped with rows left (an outage)
    busy: bool = False  # another relay holds the head of the queue
    deferred: bool = False  # skipped: Redis failed moments ago (in-process only)
    limited: bool = False  # stopped at max_rows with rows left

    def add(self, other: "RelayResult") -> None:
        self.published += other.published
        self.refused += other.refused
        self.error = other.error or self.error
        self.busy = self.busy or other.busy
        self.limited = self.limited or other.limited


@dataclass
class _Relayer:
    """Per process and database: who relays now, and the in-process backoff."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    dirty: bool = False
    retry_at: float = 0.0
    backoff: float = 0.0


_relayers: dict[str, _Relayer] = {}
_relayers_lock = threading.Lock()


def _relayer(alias: str) -> _Relayer:
    with _relayers_lock:
        return _relayers.setdefault(alias, _Relayer())


@conf.on_reset
def reset() -> None:
    """Forget every backoff (settings changed, e.g. another REDIS_URL)."""
    global _last_outage_log
    _last_outage_log = 0.0
    with _relayers_lock:
        for relayer in _relayers.values():
            relayer.retry_at = relayer.backoff = 0.0


def relay(using: str | None = None, *, block: bool = True, max_rows: int | None = None,
          inline: bool = False) -> RelayResult:
    """Publish pending rows of ``using`` in id order until the queue is
    empty, ``max_rows`` were handled, or Redis fails.

    ``block=False`` returns at once (``busy``) when another relay of this
    process or (with row locks) of another process holds the queue's head:
    that relay goes on until the queue is empty, rows committed meanwhile
    included. ``inline`` is the in-process relay after a commit, which
    skips its attempt (``deferred``) for a while after Redis failed.
    """
    alias = using or DEFAULT_DB_ALIAS
    relayer = _relayer(alias)
    total = RelayResult()
    if not _begin(relayer, inline, total):
        return total
    while relayer.dirty:
        got = (relayer.lock.acquire(timeout=LOCK_TIMEOUT) if block
               else relayer.lock.acquire(blocking=False))
        if not got:
            total.busy = True
            break
        try:
            relayer.dirty = False
            result = _drain(alias, block=block, max_rows=max_rows)
        finally:
            relayer.lock.release()
        max_rows = _after(relayer, total, result, max_rows)
        if max_rows == 0:
            break
    return total


async def arelay(using: str | None = None, *, max_rows: int | None = None,
                 inline: bool = False) -> RelayResult:
    """:func:`relay` for async code, never blocking (``block=False``): the
    database steps through ``sync_to_async``, the publish script on
    ``redis.asyncio``. On a database with row locks the relay holds a
    transaction across its Redis calls, which async code cannot do through
    ``sync_to_async``: there the sync relay runs in a thread instead."""
    from asgiref.sync import sync_to_async

    alias = using or DEFAULT_DB_ALIAS
    if connections[alias].features.has_select_for_update:
        return await sync_to_async(relay, thread_sensitive=False)(
            alias, block=False, max_rows=max_rows, inline=inline)
    relayer = _relayer(alias)
    total = RelayResult()
    if not _begin(relayer, inline, total):
        return total
    while relayer.dirty:
        if not relayer.lock.acquire(blocking=False):  # held across awaits: never wait
            total.busy = True
            break
        try:
            relayer.dirty = False
            result = await _adrain(alias, max_rows=max_rows)
        finally:
            relayer.lock.release()
        max_rows = _after(relayer, total, result, max_rows)
        if max_rows == 0:
            break
    return total


def _begin(relayer: _Relayer, inline: bool, total: RelayResult) -> bool:
    if inline and time.monotonic() < relayer.retry_at:
        stats.incr("outbox_deferred")
        total.deferred = True
        return False
    # Set before trying the lock: a holder that finishes after a failed try
    # sees it and makes one more pass, so a commit is never left behind.
    relayer.dirty = True
    return True


def _after(relayer: _Relayer, total: RelayResult, result: RelayResult,
           max_rows: int | None) -> int | None:
    """Book one drain; the rows still allowed, 0 to stop."""
    total.add(result)
    if result.error:
        relayer.backoff = min(max(relayer.backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
        relayer.retry_at = time.monotonic() + relayer.backoff
        return 0
    relayer.backoff = relayer.retry_at = 0.0
    if result.busy or result.limited:
        return 0
    if max_rows is not None:
        max_rows = max(0, max_rows - result.published - result.refused)
    return max_rows


def _want(alias: str, result: RelayResult, max_rows: int | None) -> int:
    """Rows to read in the next pass (0: max_rows reached; ``limited`` set
    when rows are left)."""
    want = BATCH if max_rows is None else min(BATCH, max_rows - result.published
                                               - result.refused)
    if want <= 0:
        result.limited = _pending(alias).exists()
    return max(want, 0)


def _drain(alias: str, *, block: bool, max_rows: int | None) -> RelayResult:
    result = RelayResult()
    while want := _want(alias, result, max_rows):
        try:
            done, count = _pass(alias, want, nowait=not block)
        except OperationalError as exc:
            if not _lock_failure(exc):
                raise
            result.busy = True
            return result
        result.add(done)
        if done.error or count < want:
            break
    return result


async def _adrain(alias: str, *, max_rows: int | None) -> RelayResult:
    """:func:`_drain` without row locks (see :func:`arelay`)."""
    from asgiref.sync import sync_to_async

    result = RelayResult()
    while want := await sync_to_async(_want)(alias, result, max_rows):
        rows = await sync_to_async(_head)(alias, want, lock=False, nowait=False)
        outcome = await apublish_rows(rows) if rows else ([], {}, [], None)
        done = await sync_to_async(_settle)(alias, *outcome)
        result.add(done)
        if done.error or len(rows) < want:
            break
    return result


def _lock_failure(exc: OperationalError) -> bool:
    """A NOWAIT lock request that found the rows locked (PostgreSQL 55P03,
    MySQL 3572, Oracle ORA-00054)."""
    cause = exc.__cause__
    code = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)
    if code == "55P03":
        return True
    text = str(exc).lower()
    return "could not obtain lock" in text or "nowait" in text or "ora-00054" in text


def _pending(alias: str):
    return _model().objects.using(alias).filter(refused__isnull=True).order_by("pk")


def _pass(alias: str, want: int, *, nowait: bool) -> tuple[RelayResult, int]:
    """One batch: lock (where the database can), publish, delete. Returns the
    outcome and how many rows were read."""
    if not connections[alias].features.has_select_for_update:
        # SQLite: no row locks, and a transaction held across the Redis calls
        # would block every writer (rollback journal): read, publish, delete
        # in autocommit; the process lock orders this process's relays.
        rows = _head(alias, want, lock=False, nowait=False)
        return _settle(alias, *publish_rows(rows)), len(rows)
    with transaction.atomic(using=alias):
        rows = _head(alias, want, lock=True, nowait=nowait)
        return _settle(alias, *publish_rows(rows)), len(rows)


def _settle(alias: str, acked: list[int], refused: dict[int, str], failed: list[int],
            error: str | None) -> RelayResult:
    """Delete what Redis acknowledged, take refused rows out of the queue,
    count the attempt of the rows an outage stopped at."""
    result = RelayResult()
    model = _model().objects.using(alias)
    if acked:
        _delete(alias, acked)
        stats.incr("outbox_relayed", len(acked))
        result.published = len(acked)
    if refused:
        now = timezone.now()
        for pk, reason in refused.items():
            model.filter(pk=pk).update(refused=now, error=reason[:2000])
        stats.incr("outbox_refused", len(refused))
        result.refused = len(refused)
    if failed:
        from django.db.models import F
        model.filter(pk__in=failed).update(attempts=F("attempts") + 1,
                                           error=(error or "")[:2000])
        result.error = error
    return result


# --------------------------------------------------------------------------
# Publishing rows
# --------------------------------------------------------------------------

Outcome = tuple[list[int], dict[int, str], list[int], "str | None"]


def _plan(rows: list):
    """What publishing ``rows`` takes, as a generator: it yields the script
    runs ``(shard, keys, args)`` one at a time and is sent each reply, or thrown the
    ``redis.RedisError`` it raised. Returns (acknowledged ids, refused ids
    with reasons, ids of the group an outage stopped at, that outage). The
    sync and the asyncio relay drive the same plan."""
    acked: list[int] = []
    refused: dict[int, str] = {}
    for group in _groups(rows, refused):
        try:
            if group.kind == "invalidate":
                for call in invalidation_calls(group.entries):
                    yield call
                    stats.incr("invalidations_published")
            else:
                yield message_call(group.message)
                stats.incr("messages_published")
            acked.extend(row.pk for row in group.rows)
            continue
        except redis.RedisError as exc:
            stats.incr("publish_failures")
            if transient(exc):
                _log_outage(exc, len(rows) - len(acked) - len(refused))
                return acked, refused, [row.pk for row in group.rows], str(exc) or repr(exc)
            first_error = exc
        # Refused. A message group is one message (its rows are duplicates);
        # an invalidation group is tried row by row, so the others go through.
        if group.kind == "message" or len(group.rows) == 1:
            for row in group.rows:
                _refuse(refused, row, first_error)
            continue
        for row in group.rows:
            try:
                for call in invalidation_calls(json.loads(row.body)):
                    yield call
                    stats.incr("invalidations_published")
                acked.append(row.pk)
            except redis.RedisError as exc:
                stats.incr("publish_failures")
                if transient(exc):
                    return acked, refused, [row.pk], str(exc) or repr(exc)
                _refuse(refused, row, exc)
    return acked, refused, [], None


def publish_rows(rows: list) -> Outcome:
    """Publish rows in order with the sync client (see :func:`_plan`)."""
    from . import script
    from .connection import get_redis

    plan = _plan(rows)
    reply, error = None, None
    while True:
        try:
            call = plan.throw(error) if error is not None else plan.send(reply)
        except StopIteration as stop:
            return stop.value
        try:
            shard, keys, args = call
            reply, error = script.run(get_redis(shard), keys, args), None
        except redis.RedisError as exc:
            reply, error = None, exc


async def apublish_rows(rows: list) -> Outcome:
    """:func:`publish_rows` on ``redis.asyncio``."""
    from . import script
    from .connection import get_async_redis

    plan = _plan(rows)
    reply, error = None, None
    while True:
        try:
            call = plan.throw(error) if error is not None else plan.send(reply)
        except StopIteration as stop:
            return stop.value
        try:
            shard, keys, args = call
            reply, error = await script.arun(get_async_redis(shard), keys, args), None
        except redis.RedisError as exc:
            reply, error = None, exc


def _refuse(refused: dict, row, exc: Exception) -> None:
    refused[row.pk] = f"{type(exc).__name__}: {exc}"
    logger.error("mizan-hub: Redis refused outbox row %s (%s: %s); it is taken out of the "
                 "queue (manage.py mizan_hub_relay --requeue-refused puts it back)",
                 row.pk, type(exc).__name__, exc)


_last_outage_log = 0.0


def _log_outage(exc: Exception, left: int) -> None:
    """A warning per outage and minute, not one per relay attempt (the
    worker and the relay command retry every second)."""
    global _last_outage_log
    now = time.monotonic()
    level = logging.WARNING if now - _last_outage_log >= 60 else logging.DEBUG
    if level == logging.WARNING:
        _last_outage_log = now
    logger.log(level, "mizan-hub: Redis unavailable (%s); %d event(s) stay in the outbox "
               "and are retried", exc, left)


# --------------------------------------------------------------------------
# Operations and metrics
# --------------------------------------------------------------------------

def databases() -> list[str]:
    """The databases that hold the outbox table (where migrations put it)."""
    model = _model()
    return [alias for alias in settings.DATABASES
            if router.allow_migrate_model(alias, model)]


def requeue_refused(using: str | None = None) -> int:
    """Put refused rows back in the queue (in their old order)."""
    return (_model().objects.using(using or DEFAULT_DB_ALIAS)
            .filter(refused__isnull=False).update(refused=None, attempts=0))


def lag(using: str | None = None) -> dict[str, float]:
    """The relay's lag on one database: rows pending, the age in seconds of
    the oldest one (0 when none), rows refused."""
    alias = using or DEFAULT_DB_ALIAS
    pending = _pending(alias)
    oldest = pending.values_list("created", flat=True).first()
    age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
    return {"pending": pending.count(), "oldest_age_seconds": age,
            "refused": _model().objects.using(alias).filter(refused__isnull=False).count()}


def _gauges() -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {"outbox_pending": {}, "outbox_oldest_age_seconds": {},
                                          "outbox_refused_rows": {}}
    for alias in databases():
        try:
            values = lag(alias)
        except Exception as exc:  # a missing table must not break the metrics page
            logger.warning("mizan-hub: outbox lag of %r unreadable: %s", alias, exc)
            continue
        labels = (("database", alias),)
        out["outbox_pending"][labels] = values["pending"]
        out["outbox_oldest_age_seconds"][labels] = values["oldest_age_seconds"]
        out["outbox_refused_rows"][labels] = values["refused"]
    return out


stats.register_gauges(_gauges)
