"""Who may read the action log and who may approve actions: roles bound to credentials.

``actions.yaml``::

    access:
      - {name: grafana, role: viewer,   token_file: /etc/driftline/tokens/grafana}
      - {name: alice,   role: approver, token_file: /etc/driftline/tokens/alice}
      - {name: bob,     role: approver, tls_subject: "CN=bob,O=ml-platform"}   # mTLS
      - {name: ops,     role: admin,    token_env: DRIFTLINE_ADMIN_TOKEN}

Roles are ordered: a ``viewer`` reads pending actions and the audit log, an ``approver`` also
approves and rejects, an ``admin`` can do everything an approver can (and is what the local CLI
acts as, since it needs write access to the database file). The credential Alertmanager uses for
webhooks is never a principal here — the loader refuses a token equal to it — so an alert's own
sender can never approve the action it triggered.

>>> Role.rank("approver") > Role.rank("viewer")
True
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ROLES", "AccessConfig", "Principal", "Role", "subject_string"]

ROLES = ("viewer", "approver", "admin")


class Role:
    @staticmethod
    def rank(role: str) -> int:
        return ROLES.index(role) + 1 if role in ROLES else 0


@dataclass(frozen=True)
class Principal:
    """A named person or system with one role; ``token`` is a Secret-like object with
    ``value()``, ``tls_subject`` an RFC 4514-style subject (``CN=bob,O=ml``) or a bare CN."""

    name: str
    role: str
    token: Any = None
    tls_subject: str | None = None
    via: str = "api"

    def may(self, role: str) -> bool:
        return Role.rank(self.role) >= Role.rank(role)

    def describe(self) -> str:
        return f"{self.name} ({self.role}) via {self.via}"


def subject_string(cert: Mapping[str, Any] | None) -> str:
    """``CN=bob,O=ml`` from ``ssl.SSLSocket.getpeercert()`` (most specific first, as written)."""
    if not cert:
        return ""
    parts = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
                     "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}.get(key, key)
            parts.append(f"{short}={value}")
    return ",".join(reversed(parts))


@dataclass(frozen=True)
class AccessConfig:
    principals: tuple[Principal, ...] = ()

    def identify(self, authorization: str | None, subject: str = "") -> Principal | None:
        """The principal whose bearer token or mTLS subject this request carries, else None.
        Every token is compared (constant time), so timing does not tell which one matched."""
        scheme, _, value = (authorization or "").partition(" ")
        given = value.strip().encode() if scheme.lower() == "bearer" and value.strip() else None
        found: Principal | None = None
        for p in self.principals:
            if given is not None and p.token is not None:
                expected = p.token.value().encode()
                if expected and hmac.compare_digest(given, expected) and found is None:
                    found = p
            if found is None and p.tls_subject and subject and _subject_matches(p.tls_subject, subject):
                found = p
        return found

    def has(self, role: str) -> bool:
        return any(p.may(role) for p in self.principals)


def _subject_matches(wanted: str, subject: str) -> bool:
    """``wanted`` is a full subject (``CN=bob,O=ml``) or just the common name (``bob``)."""
    norm = ",".join(part.strip() for part in subject.split(","))
    if "=" in wanted:
        return ",".join(part.strip() for part in wanted.split(",")) == norm
    return f"CN={wanted}" in norm.split(",")
