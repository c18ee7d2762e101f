"""Model signals: saving or deleting a model invalidates contexts.

Declared in settings::

    MIZAN_HUB = {"MODELS": {
        "todos.Todo": ["todos", ("todo", {"id": "pk"}), ("list", {"list_id": "list_id"})],
    }}

or in code: ``mizan_hub.watch(Todo, "todos", ("todo", {"id": "pk"}))``, or
``@mizan_hub.watch("todos")`` on the model class. An entry is a context name
(the whole context), ``(context, {param: source})`` or ``{"context", "params"}``;
a source is an attribute name (dotted paths follow relations: ``"owner.pk"``,
each step maybe a query) or a callable taking the instance.

Invalidations are published on ``post_save`` and ``post_delete`` through
:func:`mizan_hub.invalidate`, hence after the commit. When a save moves an
instance to other params (``list_id`` 1 -> 2), the params it had when loaded
are invalidated too -- otherwise the old list's subscribers would keep a
row that left it. That snapshot is taken for plain attribute sources only
(read from the instance's ``__dict__`` on ``post_init``, free); dotted and
callable sources are read after the save alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_init, post_save

from .publishing import invalidate

logger = logging.getLogger("mizan_hub.receivers")

SNAPSHOT = "_mizan_hub_params"

# model -> [(context, {param: source} or None for the whole context)]
_watched: dict[type, list[tuple[str, dict | None]]] = {}


def parse_entry(entry: Any) -> tuple[str, dict | None]:
    """``(context, sources)``; sources None for a whole-context entry."""
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        context, sources = entry
    elif isinstance(entry, Mapping) and "context" in entry:
        context, sources = entry["context"], entry.get("params", {})
    else:
        raise ValueError(f"a model entry is a context name, (context, params) or "
                         f"{{'context', 'params'}}, not {entry!r}")
    if not isinstance(context, str) or not isinstance(sources, Mapping):
        raise ValueError(f"bad model entry {entry!r}")
    for name, source in sources.items():
        if not (isinstance(source, str) or callable(source)):
            raise ValueError(f"param {name!r}: a source is an attribute name or a callable")
    return context, dict(sources)


def _read(instance: Any, source: str | Callable) -> Any:
    if callable(source):
        return source(instance)
    value = instance
    for step in source.split("."):
        value = getattr(value, step) if value is not None else None
    if isinstance(value, models.Model):
        value = value.pk
    return value


def _entries(instance: Any) -> list:
    out = []
    for context, sources in _watched.get(type(instance), ()):
        if sources is None:
            out.append(context)
        else:
            out.append((context, {name: _read(instance, src) for name, src in sources.items()}))
    return out


def _snapshot(instance: Any) -> dict | None:
    """The plain-attribute params as loaded, or None when one is deferred."""
    values = {}
    for _context, sources in _watched.get(type(instance), ()):
        for source in (sources or {}).values():
            if isinstance(source, str) and "." not in source:
                attname = _attname(instance, source)
                if attname not in instance.__dict__:
                    return None
                values[source] = instance.__dict__[attname]
    return values


def _attname(instance: Any, source: str) -> str:
    """Where a plain source lives in ``__dict__``: ``pk`` and a foreign key's
    name (``owner``) are stored under their column's name (``id``, ``owner_id``)."""
    if source == "pk":
        return instance._meta.pk.attname
    try:
        return instance._meta.get_field(source).attname
    except Exception:  # not a field: a plain attribute or property
        return source


def _previous_entries(instance: Any) -> list:
    before = getattr(instance, SNAPSHOT, None)
    if not before:
        return []
    now = _snapshot(instance)
    if now is None or now == before:
        return []
    out = []
    for context, sources in _watched.get(type(instance), ()):
        if sources and all(isinstance(s, str) and "." not in s for s in sources.values()):
            params = {name: before.get(src) for name, src in sources.items()}
            out.append((context, params))
    return out


def _on_init(sender, instance, **kwargs) -> None:
    if instance.pk is not None:
        snapshot = _snapshot(instance)
        if snapshot:
            instance.__dict__[SNAPSHOT] = snapshot


def _on_save(sender, instance, raw=False, using=None, **kwargs) -> None:
    if raw:  # loaddata: related objects may not exist yet
        return
    invalidate(*_entries(instance), *_previous_entries(instance), using=using)
    snapshot = _snapshot(instance)
    if snapshot:
        instance.__dict__[SNAPSHOT] = snapshot


def _on_delete(sender, instance, using=None, **kwargs) -> None:
    invalidate(*_entries(instance), *_previous_entries(instance), using=using)


def watch(model_or_entry: Any = None, *entries: Any):
    """Invalidate ``entries`` whenever ``model`` is saved or deleted.

    ``watch(Todo, "todos", ("todo", {"id": "pk"}))``, or as a class
    decorator ``@watch("todos", ("todo", {"id": "pk"}))``. Calling it again
    for a model adds entries.
    """
    if not (isinstance(model_or_entry, type) and issubclass(model_or_entry, models.Model)):
        all_entries = (model_or_entry, *entries) if model_or_entry is not None else entries

        def decorator(model: type) -> type:
            watch(model, *all_entries)
            return model
        return decorator
    model = model_or_entry
    parsed = [parse_entry(e) for e in entries]
    _watched.setdefault(model, []).extend(parsed)
    uid = f"mizan_hub.{model._meta.label}"
    post_init.connect(_on_init, sender=model, dispatch_uid=uid + ".init")
    post_save.connect(_on_save, sender=model, dispatch_uid=uid + ".save")
    post_delete.connect(_on_delete, sender=model, dispatch_uid=uid + ".delete")
    return model


def unwatch(model: type) -> None:
    """Stop watching ``model`` (tests)."""
    _watched.pop(model, None)
    uid = f"mizan_hub.{model._meta.label}"
    post_init.disconnect(sender=model, dispatch_uid=uid + ".init")
    post_save.disconnect(sender=model, dispatch_uid=uid + ".save")
    post_delete.disconnect(sender=model, dispatch_uid=uid + ".delete")


def connect_settings() -> None:
    """Watch the models of ``MIZAN_HUB["MODELS"]`` (from ``AppConfig.ready``;
    bad entries are left to the system checks to report)."""
    from django.apps import apps
    from . import conf
    models_map = conf.get("MODELS")
    if not isinstance(models_map, Mapping):
        return
    for label, entries in models_map.items():
        try:
            model = apps.get_model(label)
            parsed = [parse_entry(e) for e in entries]
        except (LookupError, ValueError, TypeError) as exc:
            logger.error("mizan-hub: MODELS[%r] ignored: %s", label, exc)
            continue
        if model in _watched:
            continue
        _watched[model] = parsed
        watch(model)
