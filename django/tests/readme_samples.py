"""Runs one ```python sample of django/README.md (tests/test_readme.py starts
this in a fresh interpreter per sample, so what a sample registers -- model
watches, handlers, guards -- stays out of the suite).

    python -m tests.readme_samples INDEX [--check-settings]

The sample runs statement by statement in a namespace that holds what the
README's prose assumes: ``user`` (a saved user), ``request`` (a request by
that user), ``Todo`` (a model), and empty ``INSTALLED_APPS``/``MIDDLEWARE``
for settings samples; models it defines land in the test app. Doctest style:
a one-line expression whose comment is a Python literal must equal it
(``invalidation_header(...)   # 'notifications, user;user_id=5'``).
``--check-settings``: the ``MIZAN_HUB`` the sample defines must pass the
system checks with no error. Prints ``{"statements": N, "claims": M}``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def samples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def claim(line: str):
    """The literal a line's trailing comment states, or None."""
    if "  # " not in line:
        return None
    comment = line.split("  # ", 1)[1].strip()
    try:
        return (ast.literal_eval(comment),)
    except (ValueError, SyntaxError):
        return None


def main() -> None:
    index, check = int(sys.argv[1]), "--check-settings" in sys.argv
    import django
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import RequestFactory

    from tests.testapp.models import Todo

    call_command("migrate", verbosity=0, run_syncdb=True)
    user = User.objects.create_user("ann", password="x")
    request = RequestFactory().get("/")
    request.user = user
    namespace = {"__name__": "tests.testapp.readme_sample", "user": user, "request": request,
                 "Todo": Todo, "INSTALLED_APPS": [], "MIDDLEWARE": []}
    code = samples()[index]
    lines = code.splitlines()
    tree = ast.parse(code)
    claims = 0
    for node in tree.body:
        if isinstance(node, ast.Expr) and node.lineno == node.end_lineno:
            stated = claim(lines[node.lineno - 1])
            value = eval(compile(ast.Expression(node.value), f"README.md sample {index}", "eval"), namespace)
            if stated is not None:
                assert value == stated[0], f"line {node.lineno}: {value!r} != {stated[0]!r}"
                claims += 1
            continue
        exec(compile(ast.Module([node], type_ignores=[]), f"README.md sample {index}", "exec"), namespace)
    if check:
        from django.core.checks import ERROR, run_checks
        from django.test import override_settings
        # The sample mounts no mizan_hub.urls (the URLconf of the suite does).
        with override_settings(MIZAN_HUB=namespace["MIZAN_HUB"], ROOT_URLCONF="tests.urls_without_hub"):
            errors = [m for m in run_checks() if m.level >= ERROR]
        assert not errors, errors
    print(json.dumps({"statements": len(tree.body), "claims": claims}))


if __name__ == "__main__":
    main()
