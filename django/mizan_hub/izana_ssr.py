"""izana's server-side rendering with versions in its hydration data
(SPEC 10.1), so the browser subscribes with ``since`` and the first ack
refetches nothing unless a context changed after the page read it.

Use this backend in place of izana's own (``pip install ./django[izana]``)::

    TEMPLATES = [{"BACKEND": "mizan_hub.izana_ssr.IzanaTemplates",   # was izana.ssr.IzanaTemplates
                  "DIRS": [...], "OPTIONS": {"worker": ".../worker.tsx"}}]

Rendering is izana's own; around it:

- the version of izana's ``global`` context is read *before* izana reads
  its bundle (``window.__IZANA_SSR_DATA__``) and set on that object as
  ``mizan_version`` (a script right after izana's), when a ``global``
  context is registered;
- the props (``window.__IZANA_SSR_PROPS__``) carry as ``mizan_version`` what
  the view's ``context_versions`` decorator read before the view ran.

The browser reads either with ``versionFrom(window.__IZANA_SSR_DATA__)``
(``@mizan/hub-client``). A Redis that cannot be read costs the version
only: the page renders as izana renders it and the client refetches after
its first ack.
"""

from __future__ import annotations

from typing import Any

from django.utils.safestring import mark_safe
from izana.ssr import backend as izana_ssr

from .versions import SSR_KEY, request_version, ssr_version

#: izana's context whose bundle is embedded in every page.
GLOBAL = "global"


def _global_version() -> str | None:
    from izana_core.registry import get_context_groups
    if GLOBAL not in get_context_groups():
        return None  # izana embeds no bundle: nothing to version, Redis not asked
    return ssr_version(GLOBAL)


class IzanaTemplate(izana_ssr.IzanaTemplate):
    def render(self, context: dict[str, Any] | None = None, request: Any = None) -> str:
        props = dict(context) if context else {}
        declared = request_version(request) if request is not None else None
        if declared is not None:
            props.setdefault(SSR_KEY, declared)
        # Read before izana reads the bundle (super().render): SPEC 10.1's order.
        version = _global_version() if request is not None else None
        html = super().render(props, request)
        if version is None:
            return html
        data = "window.__IZANA_SSR_DATA__"
        return mark_safe(f"{html}<script>if({data}){data}.{SSR_KEY}={izana_ssr.script_json(version)};</script>")


class IzanaTemplates(izana_ssr.IzanaTemplates):
    """izana's ``IzanaTemplates``, its templates rendering with versions."""

    def get_template(self, template_name: str) -> IzanaTemplate:
        template = super().get_template(template_name)
        return IzanaTemplate(template.file_path, self.get_bridge())
