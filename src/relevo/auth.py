"""API keys and roles.

Two roles. A **write** key may be embedded in a web page: it sends events and consent,
reads the catalog and (with later issues) asks for decisions. An **admin** key may do
everything, including what a page must never do: read profiles, change the catalog,
rules and experiments, erase users. Admin keys satisfy write requirements too.

Keys come from settings (`RELEVO_WRITE_KEY`, `RELEVO_ADMIN_KEY`), each a comma-separated
list so a key can be rotated without downtime (add the new one, deploy clients, remove
the old one). A presented key is compared with every configured key in constant time
(`hmac.compare_digest`), so timing tells nothing about how close a guess was or which
key matched. With no key configured at all, the API is open: every caller is an
anonymous admin (`relevo serve` then binds only to loopback).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from relevo.config import Settings
from relevo.errors import Forbidden, Unauthorized


class Role(StrEnum):
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role, and a stable, non-secret id of the key (None when open)."""

    role: Role
    key_id: str | None

    def allows(self, required: Role) -> bool:
        return self.role is Role.ADMIN or required is Role.WRITE


OPEN = Principal(Role.ADMIN, None)


def key_id(key: str) -> str:
    """A short digest naming a key in logs and rate-limit buckets (the key never is)."""
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _split(keys: str) -> tuple[bytes, ...]:
    return tuple(key.strip().encode() for key in keys.split(",") if key.strip())


class KeyRing:
    """The configured keys, and the check of a request's ``Authorization`` header."""

    def __init__(self, write_keys: str = "", admin_keys: str = "") -> None:
        self._keys = [(key, Role.WRITE) for key in _split(write_keys)] + [
            (key, Role.ADMIN) for key in _split(admin_keys)
        ]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(settings.write_key, settings.admin_key)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> Principal:
        """The principal of a bearer token; `Unauthorized` when missing or unknown.

        >>> ring = KeyRing("w1,w2", "a1")
        >>> ring.authenticate("w2").role, ring.authenticate("a1").role
        (<Role.WRITE: 'write'>, <Role.ADMIN: 'admin'>)
        """
        if not self._keys:
            return OPEN
        if not presented:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        candidate = presented.encode()
        role: Role | None = None
        for key, key_role in self._keys:  # every key is compared: no early exit
            if hmac.compare_digest(candidate, key) and role is not Role.ADMIN:
                role = key_role
        if role is None:
            raise Unauthorized("this API key is not valid")
        return Principal(role, key_id(presented))


def authorize(principal: Principal, required: Role) -> None:
    if not principal.allows(required):
        raise Forbidden(
            f"this needs an {required.value} key; a {principal.role.value} key was sent"
        )


def is_loopback(host: str) -> bool:
    """Does binding to `host` keep the server reachable from this machine only?

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
