"""System checks for ``MIZAN_HUB`` (``manage.py check``).

A wrong setting should stop ``runserver`` and a deploy's ``check --deploy``
with a message naming the key, not surface as a silent failure to publish.

| id | what |
|---|---|
| E001 | ``MIZAN_HUB`` is not a dict, or has a key this app does not know |
| E002 | ``REDIS_URL`` is not a redis://, rediss:// or unix:// URL; ``REDIS_SHARDS`` is not None or a list of 1-16 such URLs without repeats; ``REDIS_SENTINELS`` is not a list of host:port (or comes with a unix:// URL or with ``REDIS_SHARDS``), ``REDIS_MASTER_NAME`` empty, ``REDIS_SENTINEL_PASSWORD`` not a string |
| E003 | ``PREFIX`` is not a non-empty string without spaces or control characters |
| E004 | ``STRICT``, ``SESSIONS`` or ``PUBLISH_REGISTRY_ON_MIGRATE`` is not a bool, ``TEST_MODE`` not a bool or None |
| E005 | ``CONTEXTS``/``CHANNELS``: a bad name, guard, params, param_rules or history |
| E006 | ``DEFAULT`` is not "deny" or "allow" |
| E007 | ``MODELS``: an unknown model or a bad entry |
| E008 | ``TOKEN``: bad algorithm, lifetime, audience, or KID not in KEYS; or no key at all (``KEYS`` None, no ``IZANA_MWT_SECRET``) while tokens are used (``mizan_hub.urls`` mounted, or a ``token`` guard) |
| E009 | ``WORKER``: a bad number or group name |
| E010 | ``HUB_URL`` is not a ws:// or wss:// URL |
| E011 | ``REDIS_TIMEOUT`` or ``CHANNEL_TTL`` is not a positive number (TTL: >= 0) |
| E012 | ``HUB`` is not a dict of the hub's settings, or sets one Django's settings decide |
| E013 | ``ALLOWED_ORIGINS`` is not None or a list of ``scheme://host[:port]`` origins |
| E014 | ``MizanHubMiddleware`` comes before ``SessionMiddleware`` or ``AuthenticationMiddleware`` |
| E015 | (database, ``check --database ALIAS``) the outbox table is missing or a ``mizan_hub`` migration is not applied on a database that holds it |
| W001 | ``TOKEN``: an HS key shorter than 32 bytes |
| W002 | ``MODELS`` names a context the registry does not list while DEFAULT is "deny" |
| W003 | ``MizanHubMiddleware`` is not in ``MIDDLEWARE`` |
| W004 | the registry lists no context or channel and DEFAULT is "deny": the hub refuses every subscription |

Deploy checks (``manage.py check --deploy``):

| id | what |
|---|---|
| W005 | ``DEFAULT`` is "allow": any logged-in user may subscribe to contexts and channels the registry does not list |
| W006 | no allowed origins (``ALLOWED_ORIGINS``, ``CSRF_TRUSTED_ORIGINS``, ``ALLOWED_HOSTS``): cookie upgrades only from the hub's own host |
| W007 | ``HUB["allow_anonymous"]``: the hub treats every context and channel as public |
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import conf, protocol

GUARDS = ("public", "auth", "staff", "superuser", "token")
MIDDLEWARE = "mizan_hub.middleware.MizanHubMiddleware"
#: What the middleware reads before the view runs (request.session, request.user).
NEEDED_BEFORE = ("django.contrib.sessions.middleware.SessionMiddleware",
                 "django.contrib.auth.middleware.AuthenticationMiddleware")
ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "ES256")


def _err(id_: int, msg: str, hint: str | None = None) -> Error:
    return Error(msg, hint=hint, obj="settings.MIZAN_HUB", id=f"mizan_hub.E{id_:03d}")


def _warn(id_: int, msg: str, hint: str | None = None) -> Warning:
    return Warning(msg, hint=hint, obj="settings.MIZAN_HUB", id=f"mizan_hub.W{id_:03d}")


def _name_ok(name) -> bool:
    try:
        protocol.canonical_key(name, {})
        return True
    except protocol.ProtocolError:
        return False


def _positive(value, zero_ok: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 if zero_ok else value > 0


def _check_entries(kind: str, table) -> list:
    errors = []
    if not isinstance(table, Mapping):
        return [_err(5, f"MIZAN_HUB['{kind}'] must be a dict of name -> description")]
    for name, spec in table.items():
        where = f"MIZAN_HUB['{kind}'][{name!r}]"
        if not _name_ok(name):
            errors.append(_err(5, f"{where}: not a valid name (SPEC section 1)"))
            continue
        if not isinstance(spec, Mapping):
            errors.append(_err(5, f"{where} must be a dict"))
            continue
        if spec.get("guard", "auth") not in GUARDS:
            errors.append(_err(5, f"{where}: guard {spec.get('guard')!r} is not one of {GUARDS}"))
        params = spec.get("params", [])
        if not (isinstance(params, (list, tuple)) and all(isinstance(p, str) for p in params)):
            errors.append(_err(5, f"{where}: params must be a list of names"))
            params = []
        rules = spec.get("param_rules", {})
        if not isinstance(rules, Mapping) or any(v != "sub" for v in rules.values()):
            errors.append(_err(5, f"{where}: param_rules maps a param to \"sub\""))
        elif any(p not in params for p in rules):
            errors.append(_err(5, f"{where}: param_rules names a param not in params"))
        history = spec.get("history", 0)
        if isinstance(history, Mapping):
            history = history.get("size", 0)
        if kind == "CHANNELS" and not _positive(history, zero_ok=True):
            errors.append(_err(5, f"{where}: history is a number of messages (0: none)"))
        if "presence" in spec and (kind != "CHANNELS" or not isinstance(spec["presence"], bool)):
            errors.append(_err(5, f"{where}: presence is true or false, and for channels only"))
        if "join_leave" in spec and (not isinstance(spec["join_leave"], bool)
                                     or spec.get("presence") is not True):
            errors.append(_err(5, f"{where}: join_leave is true or false, with presence only"))
        if kind == "CHANNELS" and "ttl" in spec and not _positive(spec["ttl"], zero_ok=True):
            errors.append(_err(5, f"{where}: ttl is seconds (0: no expiry)"))
    return errors


def _check_models(models_map, hub) -> list:
    from django.apps import apps
    from .receivers import parse_entry
    if not isinstance(models_map, Mapping):
        return [_err(7, "MIZAN_HUB['MODELS'] must be a dict of 'app_label.Model' -> entries")]
    errors, contexts = [], []
    for label, entries in models_map.items():
        try:
            apps.get_model(label)
        except (LookupError, ValueError):
            errors.append(_err(7, f"MIZAN_HUB['MODELS']: no model {label!r}",
                               hint="use 'app_label.ModelName'"))
            continue
        if not isinstance(entries, (list, tuple)):
            errors.append(_err(7, f"MIZAN_HUB['MODELS'][{label!r}] must be a list of entries"))
            continue
        for entry in entries:
            try:
                context, _ = parse_entry(entry)
            except (ValueError, TypeError) as exc:
                errors.append(_err(7, f"MIZAN_HUB['MODELS'][{label!r}]: {exc}"))
                continue
            if not _name_ok(context):
                errors.append(_err(7, f"MIZAN_HUB['MODELS'][{label!r}]: bad context {context!r}"))
            contexts.append(context)
    if hub["DEFAULT"] == "deny" and isinstance(hub["CONTEXTS"], Mapping):
        from .izana_compat import registry_part
        known = set(hub["CONTEXTS"])
        missing = sorted({c for c in contexts if c not in known})
        if missing:
            known |= set(registry_part()["contexts"])
            missing = [c for c in missing if c not in known]
        if missing:
            errors.append(_warn(2, f"MIZAN_HUB['MODELS'] invalidates {missing}, which the "
                                   "registry does not list: with DEFAULT 'deny' nobody can "
                                   "subscribe to them", hint="add them to MIZAN_HUB['CONTEXTS']"))
    return errors


def _check_token(token) -> list:
    errors = []
    if token.get("ALGORITHM") not in ALGORITHMS:
        errors.append(_err(8, f"TOKEN['ALGORITHM'] must be one of {ALGORITHMS}"))
    for field in ("LIFETIME", "SUBSCRIPTION_LIFETIME"):
        if not (_positive(token.get(field)) and isinstance(token.get(field), int)):
            errors.append(_err(8, f"TOKEN['{field}'] must be a positive number of seconds"))
    if not isinstance(token.get("AUDIENCE"), str) or not token.get("AUDIENCE"):
        errors.append(_err(8, "TOKEN['AUDIENCE'] must be a non-empty string"))
    if token.get("USE_IZANA") not in ("auto", True, False):
        errors.append(_err(8, "TOKEN['USE_IZANA'] is 'auto', True or False"))
    keys = token.get("KEYS")
    if keys is not None:
        if not isinstance(keys, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (str, bytes)) and v for k, v in keys.items()):
            return errors + [_err(8, "TOKEN['KEYS'] must map key ids to secrets (or PEM keys)")]
        if token.get("KID") not in keys:
            errors.append(_err(8, f"TOKEN['KID'] {token.get('KID')!r} is not a key of TOKEN['KEYS']"))
        if str(token.get("ALGORITHM", "")).startswith("HS"):
            short = [k for k, v in keys.items() if len(v.encode() if isinstance(v, str) else v) < 32]
            if short:
                errors.append(_warn(1, f"TOKEN['KEYS'] {short}: HS keys shorter than 32 bytes "
                                       "can be brute-forced from one token"))
    return errors


def _check_worker(worker) -> list:
    errors = []
    for field in ("BLOCK_MS", "COUNT", "CLAIM_IDLE_MS", "CONCURRENCY"):
        if not (isinstance(worker.get(field), int) and _positive(worker.get(field))):
            errors.append(_err(9, f"WORKER['{field}'] must be a positive integer"))
    if not (isinstance(worker.get("MAX_RPC_AGE_MS"), int) and worker["MAX_RPC_AGE_MS"] >= 0):
        errors.append(_err(9, "WORKER['MAX_RPC_AGE_MS'] must be an integer >= 0"))
    group = worker.get("GROUP")
    if not isinstance(group, str) or not group or re.search(r"\s", group):
        errors.append(_err(9, "WORKER['GROUP'] must be a non-empty name without spaces"))
    if not isinstance(worker.get("HANDLER_MODULES"), (list, tuple)):
        errors.append(_err(9, "WORKER['HANDLER_MODULES'] must be a list of module paths"))
    return errors


@register()
def check_settings(app_configs=None, **kwargs) -> list:
    given = getattr(settings, "MIZAN_HUB", {})
    if not isinstance(given, Mapping):
        return [_err(1, "MIZAN_HUB must be a dict")]
    unknown = sorted(set(given) - set(conf.DEFAULTS))
    errors = []
    if unknown:
        errors.append(_err(1, f"MIZAN_HUB has unknown keys {unknown}",
                           hint=f"known keys: {sorted(conf.DEFAULTS)}"))
    for nested in conf.NESTED:
        if nested in given and not isinstance(given[nested], Mapping):
            errors.append(_err(1, f"MIZAN_HUB['{nested}'] must be a dict"))
        elif nested in given:
            extra = sorted(set(given[nested]) - set(conf.DEFAULTS[nested]))
            if extra:
                errors.append(_err(1, f"MIZAN_HUB['{nested}'] has unknown keys {extra}"))
    if errors:
        return errors
    hub = conf.hub_settings()

    url = hub["REDIS_URL"]
    if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        errors.append(_err(2, f"REDIS_URL {url!r} is not a redis://, rediss:// or unix:// URL"))
    errors += _check_shards(hub["REDIS_SHARDS"])
    try:
        sentinels = conf.sentinels()
    except (TypeError, ValueError) as exc:
        errors.append(_err(2, str(exc), hint="REDIS_SENTINELS is a list of 'host:port'"))
        sentinels = []
    if sentinels and isinstance(url, str) and urlsplit(url).scheme == "unix":
        errors.append(_err(2, "REDIS_SENTINELS with a unix:// REDIS_URL",
                           hint="with Sentinels REDIS_URL is redis:// or rediss:// and names "
                                "the database, user and password (the host comes from them)"))
    if sentinels and hub["REDIS_SHARDS"]:
        errors.append(_err(2, "REDIS_SENTINELS with REDIS_SHARDS",
                           hint="Sentinel follows one master; shards are separate servers "
                                "(the hub takes one or the other too)"))
    if not isinstance(hub["REDIS_MASTER_NAME"], str) or not hub["REDIS_MASTER_NAME"].strip():
        errors.append(_err(2, "REDIS_MASTER_NAME must be a non-empty string"))
    if not isinstance(hub["REDIS_SENTINEL_PASSWORD"], str):
        errors.append(_err(2, "REDIS_SENTINEL_PASSWORD must be a string"))
    prefix = hub["PREFIX"]
    if not isinstance(prefix, str) or not prefix or re.search(r"[\s\x00-\x1f\x7f]", prefix):
        errors.append(_err(3, "PREFIX must be a non-empty string without spaces or controls",
                           hint="the hub reads the same value as --redis-prefix "
                                "(manage.py mizan_hub_config writes it)"))
    for field in ("STRICT", "SESSIONS", "PUBLISH_REGISTRY_ON_MIGRATE"):
        if not isinstance(hub[field], bool):
            errors.append(_err(4, f"MIZAN_HUB['{field}'] must be True or False"))
    if not (hub["TEST_MODE"] is None or isinstance(hub["TEST_MODE"], bool)):
        errors.append(_err(4, "MIZAN_HUB['TEST_MODE'] must be True, False or None (on under "
                              "Django's test runner)"))
    errors += _check_entries("CONTEXTS", hub["CONTEXTS"])
    errors += _check_entries("CHANNELS", hub["CHANNELS"])
    if hub["DEFAULT"] not in ("deny", "allow"):
        errors.append(_err(6, "MIZAN_HUB['DEFAULT'] must be 'deny' or 'allow'"))
    errors += _check_models(hub["MODELS"], hub)
    errors += _check_token(hub["TOKEN"])
    errors += _check_worker(hub["WORKER"])
    hub_url = hub["HUB_URL"]
    if not isinstance(hub_url, str) or urlsplit(hub_url).scheme not in ("ws", "wss"):
        errors.append(_err(10, f"HUB_URL {hub_url!r} is not a ws:// or wss:// URL"))
    if not _positive(hub["REDIS_TIMEOUT"]):
        errors.append(_err(11, "REDIS_TIMEOUT must be a positive number of seconds"))
    if not _positive(hub["CHANNEL_TTL"], zero_ok=True):
        errors.append(_err(11, "CHANNEL_TTL must be a number of seconds >= 0"))
    errors += _check_hub(hub["HUB"])
    errors += _check_origins(hub["ALLOWED_ORIGINS"])
    errors += _check_tokens_usable(hub)
    errors += _check_registry_opens_something(hub)
    return errors


def _check_shards(shards) -> list:
    if shards is None:
        return []
    hint = "a list of Redis URLs, one per shard, in the order the hubs' --redis-shards lists them"
    if not isinstance(shards, (list, tuple)) or not 1 <= len(shards) <= 16:
        return [_err(2, "MIZAN_HUB['REDIS_SHARDS'] must be None or a list of 1-16 URLs",
                     hint=hint)]
    errors = []
    for url in shards:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            errors.append(_err(2, f"REDIS_SHARDS: {url!r} is not a redis://, rediss:// or "
                                  "unix:// URL", hint=hint))
    if not errors and len(set(shards)) != len(shards):
        errors.append(_err(2, "REDIS_SHARDS lists a URL twice: two shards would share one "
                              "Redis", hint=hint))
    return errors


def _check_hub(extra) -> list:
    if not isinstance(extra, Mapping):
        return [_err(12, "MIZAN_HUB['HUB'] must be a dict of the hub's settings",
                     hint="e.g. {'listen': '0.0.0.0:8765', 'workers': 2}")]
    errors = []
    for name in extra:
        if name in conf.DERIVED:
            errors.append(_err(12, f"MIZAN_HUB['HUB'][{name!r}] is written from "
                                   f"{conf.DERIVED[name]}: set it there"))
        elif name not in conf.HUB_SETTINGS:
            errors.append(_err(12, f"MIZAN_HUB['HUB'][{name!r}] is not a hub setting",
                               hint="the names of `mizan-hub --help`, '-' written '_'"))
    return errors


def _check_origins(origins) -> list:
    if origins is None:
        return []
    if not isinstance(origins, (list, tuple)) or not all(
            isinstance(o, str) and re.fullmatch(r"https?://[^/\s,]+", o) for o in origins):
        return [_err(13, "MIZAN_HUB['ALLOWED_ORIGINS'] must be None (derived from "
                         "CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS) or a list of origins",
                     hint="'https://app.example.com', 'http://localhost:8000', "
                          "'https://*.example.com'")]
    return []


def _token_views_mounted() -> bool:
    from django.urls import NoReverseMatch, reverse
    try:
        reverse("mizan_hub:token")
        return True
    except NoReverseMatch:
        return False
    except Exception:  # a broken URLconf is Django's own check's to report
        return False


def _check_tokens_usable(hub) -> list:
    if conf.token_keys() or not isinstance(hub["TOKEN"], Mapping):
        return []
    tables = [t for t in (hub["CONTEXTS"], hub["CHANNELS"]) if isinstance(t, Mapping)]
    token_guarded = sorted(name for t in tables for name, spec in t.items()
                           if isinstance(spec, Mapping) and spec.get("guard") == "token")
    uses = []
    if _token_views_mounted():
        uses.append("mizan_hub.urls is mounted (its token views)")
    if token_guarded:
        uses.append(f"{token_guarded} have guard 'token'")
    if not uses:
        return []
    return [_err(8, f"no token signing key (TOKEN['KEYS'] is None and IZANA_MWT_SECRET is "
                    f"not set), but {' and '.join(uses)}: minting a token raises",
                 hint="set MIZAN_HUB['TOKEN']['KEYS'] = {'v1': <32+ random bytes>}")]


def _check_registry_opens_something(hub) -> list:
    if hub["DEFAULT"] != "deny" or not all(
            isinstance(hub[k], Mapping) for k in ("CONTEXTS", "CHANNELS")):
        return []
    if hub["CONTEXTS"] or hub["CHANNELS"]:
        return []
    from .izana_compat import registry_part
    part = registry_part()
    if part["contexts"] or part.get("channels"):
        return []
    return [_warn(4, "the registry lists no context or channel and MIZAN_HUB['DEFAULT'] is "
                     "'deny': the hub refuses every subscription",
                  hint="list them in MIZAN_HUB['CONTEXTS'] / ['CHANNELS']")]


@register()
def check_middleware(app_configs=None, **kwargs) -> list:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE not in middleware:
        return [Warning(f"{MIDDLEWARE} is not in MIDDLEWARE: invalidations that responses "
                        "declare (X-Mizan-Invalidate, a JSON body's \"invalidate\") reach this "
                        "tab only, and a rotated session key keeps its old sockets",
                        hint="add it after SessionMiddleware and AuthenticationMiddleware",
                        obj="settings.MIDDLEWARE", id="mizan_hub.W003")]
    at = middleware.index(MIDDLEWARE)
    late = [m for m in NEEDED_BEFORE if m in middleware[at + 1:]]
    if late:
        return [Error(f"{MIDDLEWARE} comes before {', '.join(late)}: it reads request.session "
                      "and request.user, which they set",
                      hint="move it after them", obj="settings.MIDDLEWARE", id="mizan_hub.E014")]
    return []


@register(Tags.database)
def check_outbox_table(app_configs=None, databases=None, **kwargs) -> list:
    """E015: ``invalidate()``/``publish()`` write to the outbox table, and
    fail with "no such table" where a migration of this app is missing.

    A database check (it reads the database), so Django runs it only when
    asked for databases: ``manage.py check --database ALIAS``, the test
    runner (after it migrated) and ``manage.py migrate`` -- which runs it
    before migrating, where the error would stop the very command that
    fixes it: there it says nothing. ``runserver`` lists unapplied
    migrations itself, and the first publish names the fix
    (:class:`mizan_hub.outbox.OutboxTableMissing`)."""
    if not databases or _migrate_running():
        return []
    from . import outbox
    errors = []
    for alias in databases:
        if alias not in outbox.databases():
            continue  # the router keeps the table elsewhere
        problem = _outbox_problem(alias)
        if problem:
            errors.append(Error(f"{problem}: invalidate() and publish() fail until it is",
                                hint=f"run `manage.py migrate --database {alias}`",
                                obj="mizan_hub.OutboxEntry", id="mizan_hub.E015"))
    return errors


def _outbox_problem(alias: str) -> str | None:
    from django.db import DatabaseError, connections
    from django.db.migrations.loader import MigrationLoader

    from .models import OutboxEntry
    connection = connections[alias]
    table = OutboxEntry._meta.db_table
    try:
        if table not in connection.introspection.table_names():
            return f"the outbox table {table} does not exist on database {alias!r}"
        loader = MigrationLoader(connection, ignore_no_migrations=True)
        unapplied = sorted(name for app, name in loader.graph.nodes
                           if app == "mizan_hub" and (app, name) not in loader.applied_migrations)
    except DatabaseError as exc:
        return f"the outbox table of database {alias!r} cannot be looked up ({exc})"
    if unapplied:
        return f"mizan_hub migration(s) {', '.join(unapplied)} not applied on database {alias!r}"
    return None


def _migrate_running() -> bool:
    """Whether a ``migrate`` command (or a subclass) is on the call stack:
    Django gives a check no other way to know who runs it."""
    from types import FrameType

    from django.core.management.commands.migrate import Command as Migrate
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), Migrate):
            return True
        frame = frame.f_back
    return False


def _deploy_warn(id_: int, msg: str, hint: str) -> Warning:
    return Warning(msg, hint=hint, obj="settings.MIZAN_HUB", id=f"mizan_hub.W{id_:03d}")


@register(Tags.security, deploy=True)
def check_deploy(app_configs=None, **kwargs) -> list:
    given = getattr(settings, "MIZAN_HUB", {})
    if not isinstance(given, Mapping) or check_settings():
        return []  # the settings check reports what is wrong first
    hub = conf.hub_settings()
    warnings = []
    if hub["DEFAULT"] == "allow":
        warnings.append(_deploy_warn(5, "MIZAN_HUB['DEFAULT'] is 'allow': any logged-in user "
                                        "may subscribe to every context and channel the "
                                        "registry does not list",
                                     "set 'deny' and list them in CONTEXTS / CHANNELS"))
    if not conf.allowed_origins():
        warnings.append(_deploy_warn(6, "no allowed origins for the hub (ALLOWED_ORIGINS, "
                                        "CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS name none): "
                                        "it takes cookie-authenticated upgrades from its own "
                                        "host only",
                                     "name the site's origin in CSRF_TRUSTED_ORIGINS or "
                                     "MIZAN_HUB['ALLOWED_ORIGINS']"))
    if str(hub["HUB"].get("allow_anonymous", False)).lower() in ("true", "1", "yes", "on"):
        warnings.append(_deploy_warn(7, "MIZAN_HUB['HUB']['allow_anonymous'] is set: the hub "
                                        "accepts connections without credentials and treats "
                                        "every context and channel as public",
                                     "remove it; give public contexts guard 'public'"))
    return warnings
