"""System checks for ``MIZAN_HUB`` (``manage.py check``).

A wrong setting should stop ``runserver`` and a deploy's ``check --deploy``
with a message naming the key, not surface as a silent failure to publish.

| id | what |
|---|---|
| E001 | ``MIZAN_HUB`` is not a dict, or has a key this app does not know |
| E002 | ``REDIS_URL`` is not a redis://, rediss:// or unix:// URL |
| E003 | ``PREFIX`` is not a non-empty string without spaces or control characters |
| E004 | ``STRICT`` or ``SESSIONS`` is not a bool |
| E005 | ``CONTEXTS``/``CHANNELS``: a bad name, guard, params, param_rules or history |
| E006 | ``DEFAULT`` is not "deny" or "allow" |
| E007 | ``MODELS``: an unknown model or a bad entry |
| E008 | ``TOKEN``: bad algorithm, lifetime, audience, or KID not in KEYS |
| E009 | ``WORKER``: a bad number or group name |
| E010 | ``HUB_URL`` is not a ws:// or wss:// URL |
| E011 | ``REDIS_TIMEOUT`` or ``CHANNEL_TTL`` is not a positive number (TTL: >= 0) |
| W001 | ``TOKEN``: an HS key shorter than 32 bytes |
| W002 | ``MODELS`` names a context the registry does not list while DEFAULT is "deny" |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register

from . import conf, protocol

GUARDS = ("public", "auth", "staff", "superuser", "token")
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
    for field in ("BLOCK_MS", "COUNT", "CLAIM_IDLE_MS"):
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
    prefix = hub["PREFIX"]
    if not isinstance(prefix, str) or not prefix or re.search(r"[\s\x00-\x1f\x7f]", prefix):
        errors.append(_err(3, "PREFIX must be a non-empty string without spaces or controls",
                           hint="the hub must be started with the same --prefix"))
    for field in ("STRICT", "SESSIONS"):
        if not isinstance(hub[field], bool):
            errors.append(_err(4, f"MIZAN_HUB['{field}'] must be True or False"))
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
    return errors
