"""Template context processors.

``versions`` gives templates ``mizan_version``: the ``X-Mizan-Version``
value of the contexts the view's ``context_versions`` decorator read before
the view ran (SPEC 10.1), None when it read none. A server-rendered page
embeds it beside the data it renders, so the browser subscribes with
``since`` (it cannot read the page's own response headers)::

    TEMPLATES = [{..., "OPTIONS": {"context_processors": [
        ..., "mizan_hub.context_processors.versions"]}}]

    {{ mizan_version|json_script:"mizan-version" }}
"""

from __future__ import annotations

from typing import Any

from .versions import SSR_KEY, request_version


def versions(request: Any) -> dict[str, str | None]:
    return {SSR_KEY: request_version(request)}
