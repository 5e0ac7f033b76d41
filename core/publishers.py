"""Publishers: name, token hash, allowed ocid prefixes, validation policy and rate limit, from one file."""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.exceptions import AuthenticationError, ConfigurationError, PrefixNotAllowedError

Policy = Literal["strict", "lenient"]


@dataclass(frozen=True)
class Publisher:
    name: str
    prefixes: tuple[str, ...]
    policy: Policy = "lenient"
    token_sha256: str | None = None
    rate_limit: float | None = None
    description: str = ""

    def allows(self, ocid: str) -> bool:
        """Whether this publisher may publish ``ocid`` (prefixes compare case-insensitively)."""
        lowered = ocid.lower()
        return any(p == "*" or lowered.startswith(p.lower() + "-") or lowered == p.lower() for p in self.prefixes)

    def check(self, ocid: str) -> None:
        if not self.allows(ocid):
            raise PrefixNotAllowedError(self.name, ocid, list(self.prefixes))

    @property
    def checked_prefixes(self) -> list[str] | None:
        """The prefixes validation should enforce, or None when any ocid is allowed."""
        return None if "*" in self.prefixes else list(self.prefixes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Publishers:
    by_name: dict[str, Publisher] = field(default_factory=dict)

    def get(self, name: str | None) -> Publisher | None:
        return self.by_name.get(name or "")

    def authenticate(self, token: str | None) -> Publisher:
        """The publisher holding ``token``; AuthenticationError for none or a wrong one."""
        if not token:
            raise AuthenticationError("a publisher token is required: send 'Authorization: Bearer <token>'")
        digest = hash_token(token)
        for publisher in self.by_name.values():
            if publisher.token_sha256 and hmac.compare_digest(publisher.token_sha256, digest):
                return publisher
        raise AuthenticationError("the token matches no publisher; check it, or ask an operator to register it")


def load_publishers(path: Path) -> Publishers:
    """Read the publishers file; a wrong entry fails with the file and the entry named."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path}: publishers file not found; set OCDS_LIVE_PUBLISHERS_FILE") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    publishers: dict[str, Publisher] = {}
    for i, entry in enumerate(data.get("publisher", [])):
        where = f"{path}: publisher #{i + 1}"
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{where}: 'name' is missing")
        policy = entry.get("policy", "lenient")
        if policy not in ("strict", "lenient"):
            raise ConfigurationError(f"{where} ({name}): policy must be 'strict' or 'lenient', not {policy!r}")
        prefixes = entry.get("prefixes")
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise ConfigurationError(f"{where} ({name}): 'prefixes' must be a list of strings")
        if name in publishers:
            raise ConfigurationError(f"{where}: the name {name!r} is used twice")
        publishers[name] = Publisher(
            name=name,
            prefixes=tuple(prefixes),
            policy=policy,
            token_sha256=entry.get("token_sha256"),
            rate_limit=entry.get("rate_limit"),
            description=entry.get("description", ""),
        )
    return Publishers(publishers)
