"""``manage.py mizan_hub_config -o FILE``: the hub's whole configuration,
from Django's settings, so that ``mizan-hub --config FILE`` is the hub's
whole command line and nothing is repeated by hand.

Writes FILE (the hub's ``name = value`` lines, ``server/src/core/mh_config.c``)
and, beside it, the files it names (``hub.conf`` gives ``hub.registry.json``
and so on):

| file | from | mode |
|---|---|---|
| FILE | ``REDIS_URL`` (``redis``), ``REDIS_SHARDS`` (``redis_shards``), ``REDIS_SENTINELS``/``REDIS_MASTER_NAME``/``REDIS_SENTINEL_PASSWORD`` (``redis_sentinels``, ``redis_master_name``, ``redis_sentinel_password``), ``PREFIX`` (``redis_prefix``), ``TOKEN['AUDIENCE']`` (``jwt_audience``), ``SESSION_COOKIE_NAME``/``AGE`` (``session_cookie``, ``session_max_age``), ``conf.allowed_origins()`` (``allowed_origins``), ``MIZAN_HUB['HUB']`` (the hub's own settings: listen, workers, tls...) | 0600 when a Redis URL or the Sentinels have a password, else 0644 |
| ``STEM.registry.json`` | ``CONTEXTS``/``CHANNELS`` (and izana's), as ``mizan_hub_registry`` | 0644 |
| ``STEM.jwks.json`` | ``TOKEN['KEYS']`` (or ``IZANA_MWT_SECRET``) and ``ALGORITHM``: HS keys as they are, RS/ES keys' public halves | 0600 |
| ``STEM.secret-keys`` | ``SECRET_KEY`` then ``SECRET_KEY_FALLBACKS``, one a line: only for ``signed_cookies`` sessions (other engines go through the session registry in Redis and the hub needs no Django key) | 0600 |

Each file is replaced in one rename. The hub reads the registry again on
SIGHUP; the rest needs a restart.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mizan_hub import conf
from mizan_hub.registry import registry_json

#: The hub reads a config line into a 1024-byte buffer (mh_config.c).
MAX_LINE = 1000


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Writes ``text`` to ``path`` through a temporary file and one rename,
    so that a hub (re)loading it never reads half a file; the mode is set
    before the rename, so a secret is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def hub_redis_url(url: str, setting: str = "MIZAN_HUB['REDIS_URL']") -> tuple[str, bool]:
    """``REDIS_URL`` (or a URL of ``setting``) in the form the hub reads
    (``redis[s]://[[USER]:PASSWORD@]HOST:PORT/DB``, ``[IPv6]`` hosts) and
    whether it carries a password; a CommandError for what the hub cannot
    use."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise CommandError(f"{setting} {url!r}: the hub connects to redis:// and "
                           "rediss:// URLs only (no unix socket)")
    if parts.query or parts.fragment:
        raise CommandError(f"{setting} {url!r}: the hub reads no URL options")
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise CommandError(f"{setting} {url!r}: {exc}") from None
    db = parts.path.strip("/") or "0"
    if not db.isdigit() or int(db) > 15:
        raise CommandError(f"{setting} {url!r}: the database is a number, 0-15")
    user = unquote(parts.username) if parts.username else ""
    password = unquote(parts.password) if parts.password else ""
    host = parts.hostname or "127.0.0.1"
    # The hub takes the user up to the first ":" and the password up to the
    # last "@", and decodes no %-escapes: what it would misread is refused.
    if ":" in user or "@" in user:
        raise CommandError(f"{setting}: the hub cannot read a user name that "
                           "contains ':' or '@'")
    if any(ch in user + password for ch in "\r\n"):
        raise CommandError(f"{setting}: a line break in the user or password")
    if user == "default":
        user = ""  # AUTH PASSWORD alone is the default user
    auth = f"{user}:{password}@" if password else ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{auth}{host}:{port}/{db}", bool(password)


def jwks(keys: dict, algorithm: str) -> dict:
    """The hub's key file for Django's signing keys: HS keys as ``oct`` JWKs,
    RS256/ES256 private keys as their public PEM (needs ``cryptography``).
    Every key pins the algorithm Django signs with."""
    out = []
    for kid, key in keys.items():
        raw = key.encode() if isinstance(key, str) else bytes(key)
        if algorithm.startswith("HS"):
            k = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
            out.append({"kty": "oct", "kid": kid, "alg": algorithm, "k": k})
            continue
        try:
            from cryptography.hazmat.primitives import serialization
        except ImportError:
            raise CommandError(f"TOKEN['ALGORITHM'] {algorithm}: writing the public keys needs "
                               "the cryptography package") from None
        try:
            private = serialization.load_pem_private_key(raw, password=None)
        except ValueError as exc:
            raise CommandError(f"TOKEN['KEYS'][{kid!r}]: not a PEM private key ({exc})") from None
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        out.append({"kty": "RSA" if algorithm.startswith("RS") else "EC", "kid": kid,
                    "alg": algorithm, "pem": public})
    return {"keys": out}


def hub_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Command(BaseCommand):
    help = ("Write the hub's configuration file (and the registry, key and secret files it "
            "names, beside it) from Django's settings: run the hub with "
            "`mizan-hub --config FILE`.")

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", required=True,
                            help="the config file to write, e.g. /etc/mizan-hub/hub.conf")

    def handle(self, *args, **options):
        from mizan_hub import sessions

        path = Path(options["output"]).resolve()
        stem = path.name.rsplit(".", 1)[0] if "." in path.name else path.name
        beside = lambda suffix: path.with_name(f"{stem}.{suffix}")  # noqa: E731
        hub = conf.hub_settings()
        lines = [
            "# Written by `manage.py mizan_hub_config` from Django's settings "
            f"({os.environ.get('DJANGO_SETTINGS_MODULE', 'settings')}).",
            "# Do not edit: change the settings and run the command again. Run the hub with",
            f"#   mizan-hub --config {path}",
        ]
        settings_lines: list[tuple[str, object]] = []
        files: list[tuple[Path, str, int]] = []

        redis_url, has_password = hub_redis_url(hub["REDIS_URL"])
        settings_lines += [("redis", redis_url), ("redis_prefix", hub["PREFIX"])]
        if hub["REDIS_SHARDS"]:
            # SPEC 11.1: the same URLs in the same order as the publisher's.
            shard_urls = []
            for url in hub["REDIS_SHARDS"]:
                shard_url, secret = hub_redis_url(url, "MIZAN_HUB['REDIS_SHARDS']")
                if "," in shard_url or " " in shard_url:
                    raise CommandError("MIZAN_HUB['REDIS_SHARDS']: the hub's --redis-shards "
                                       "is split at ',' and ' ': a URL cannot contain them")
                shard_urls.append(shard_url)
                has_password = has_password or secret
            settings_lines.append(("redis_shards", ",".join(shard_urls)))
        try:
            sentinels = conf.sentinels()
        except ValueError as exc:
            raise CommandError(f"MIZAN_HUB['REDIS_SENTINELS']: {exc}") from None
        if sentinels:
            # the hub takes the master from them; --redis names the database,
            # user and password (and TLS) only. It splits HOST:PORT at the
            # last ':' and wants no brackets around an IPv6 host.
            settings_lines += [
                ("redis_sentinels", ",".join(f"{h}:{p}" for h, p in sentinels)),
                ("redis_master_name", hub["REDIS_MASTER_NAME"])]
            if hub["REDIS_SENTINEL_PASSWORD"]:
                settings_lines.append(("redis_sentinel_password", hub["REDIS_SENTINEL_PASSWORD"]))
                has_password = True

        registry = beside("registry.json")
        files.append((registry, registry_json(indent=2), 0o644))
        settings_lines.append(("registry", registry))

        keys = conf.token_keys()
        token = hub["TOKEN"]
        if keys:
            key_file = beside("jwks.json")
            files.append((key_file, json.dumps(jwks(keys, token["ALGORITHM"]), indent=2) + "\n",
                          0o600))
            settings_lines += [("jwt_keys", key_file), ("jwt_audience", token["AUDIENCE"])]
        else:
            lines.append("# No TOKEN['KEYS'] (nor IZANA_MWT_SECRET): token auth is off.")

        if hub["SESSIONS"]:
            settings_lines += [("session_cookie", settings.SESSION_COOKIE_NAME),
                               ("session_max_age", int(settings.SESSION_COOKIE_AGE))]
            if sessions.signed_cookies():
                secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
                if any("\n" in str(s) or not str(s) for s in secrets):
                    raise CommandError("SECRET_KEY and SECRET_KEY_FALLBACKS must be non-empty "
                                       "and on one line each")
                secret_file = beside("secret-keys")
                files.append((secret_file, "".join(f"{s}\n" for s in secrets), 0o600))
                settings_lines.append(("django_secret_keys_file", secret_file))
        else:
            lines.append("# MIZAN_HUB['SESSIONS'] is False: the hub ignores session cookies.")
            settings_lines.append(("session_cookie", ""))

        origins = conf.allowed_origins()
        if origins:
            settings_lines.append(("allowed_origins", ",".join(origins)))
        else:
            lines.append("# No allowed origins (ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS, "
                         "MIZAN_HUB['ALLOWED_ORIGINS']): cookie upgrades from the hub's own "
                         "host only.")

        extra = hub["HUB"]
        if not isinstance(extra, dict):
            raise CommandError("MIZAN_HUB['HUB'] must be a dict of hub settings")
        for name, value in extra.items():
            if name in conf.DERIVED:
                raise CommandError(f"MIZAN_HUB['HUB'][{name!r}]: written from "
                                   f"{conf.DERIVED[name]}; set it there")
            if name not in conf.HUB_SETTINGS:
                raise CommandError(f"MIZAN_HUB['HUB'][{name!r}]: not a hub setting "
                                   "(see `mizan-hub --help`)")
            settings_lines.append((name, hub_value(value)))

        for name, value in settings_lines:
            value = str(value)
            line = f"{name} = {value}"
            if "\n" in value or "\r" in value or value != value.strip() or len(line) > MAX_LINE:
                raise CommandError(f"hub setting {name}: {value[:60]!r}... cannot be written on "
                                   f"one config line (no line breaks, no surrounding spaces, "
                                   f"at most {MAX_LINE} characters)")
            lines.append(line)

        for file, text, mode in files:
            write_atomically(file, text, mode)
        write_atomically(path, "\n".join(lines) + "\n", 0o600 if has_password else 0o644)
        self.stderr.write(f"hub configuration written to {path} "
                          f"(+ {', '.join(f.name for f, _, _ in files)})")
        self.stdout.write(f"mizan-hub --config {path}")
