"""izana @client functions and a Channel, registered the way an izana
project registers them (izana_core.registry / izana.channels), for
test_izana.py. Imported only when django-izana is installed."""

from __future__ import annotations

from pydantic import BaseModel

from izana import Channel, client
from izana import register_channel
from izana_core import registry

calls = []


@client(context="profile")
def profile_name(request, user_id: int) -> dict:
    return {"name": f"user {user_id}"}


@client(context="profile", auth="staff")
def profile_secret(request, user_id: int) -> dict:
    return {"secret": 1}


@client(context="vault", auth=lambda request: request.user.is_superuser)
def vault_items(request) -> list:
    return []


@client(affects="profile", websocket=True)
def rename(request, user_id: int, name: str) -> dict:
    calls.append((user_id, name))
    return {"ok": True}


@client(affects="profile")
def http_only(request, user_id: int) -> dict:
    return {}


class RoomParams(BaseModel):
    room: str


class Say(BaseModel):
    text: str


class Said(BaseModel):
    text: str
    by: str


class Room(Channel):
    Params = RoomParams
    ClientMessage = Say
    ServerMessage = Said

    def authorize(self, params):
        return params.room != "secret" and self.user.is_authenticated

    def group(self, params):
        return f"room_{params.room}"

    def receive(self, params, msg):
        return Said(text=msg.text.upper(), by=str(self.user.pk))


FUNCTIONS = [profile_name, profile_secret, vault_items, rename, http_only]


def install() -> None:
    for fn in FUNCTIONS:
        registry.register(fn, fn.__name__)
    from izana.channels import get_channel
    if get_channel("room") is None:
        register_channel(Room, "room")


def uninstall() -> None:
    for fn in FUNCTIONS:
        registry._functions.pop(fn.__name__, None)
    from izana.channels import _registry
    _registry.pop("room", None)


# -- server-side rendering (test_versions.py): izana's `global` context, whose
# bundle izana's SSR embeds in every page. `ssr_between` runs while the
# bundle is read, so a test can publish exactly there.
ssr_between = []


@client(context="global")
def site_banner(request) -> dict:
    for hook in ssr_between:
        hook()
    return {"text": "hello"}


def install_global() -> None:
    registry.register(site_banner, "site_banner")


def uninstall_global() -> None:
    registry._functions.pop("site_banner", None)
    ssr_between.clear()
