"""Publishers: name, token hash, allowed ocid prefixes, validation policy and rate limit, from one file."""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.exceptions import AuthenticationError, ConfigurationError, PrefixNotAllowedError
from core.mexico import ProfileRule, select_rules

Policy = Literal["strict", "lenient"]
Severity = Literal["warning", "error"]


@dataclass(frozen=True)
class Publisher:
    name: str
    prefixes: tuple[str, ...]
    policy: Policy = "lenient"
    token_sha256: str | None = None
    rate_limit: float | None = None
    description: str = ""
    extensions: tuple[str, ...] = ()  # extension URLs every release of this publisher is checked and merged with
    rules: tuple[ProfileRule, ...] = ()  # profile rules (core.mexico) checked on its releases
    rules_severity: Severity = "warning"
    project_prefix: str | None = None  # OC4IDS project ids of its processes' projects start with it (core.projects)

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
        extensions = entry.get("extensions", [])
        if not isinstance(extensions, list) or not all(isinstance(e, str) and e for e in extensions):
            raise ConfigurationError(f"{where} ({name}): 'extensions' must be a list of extension.json URLs")
        rules = entry.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise ConfigurationError(f"{where} ({name}): 'rules' must be a list of rule ids or rule sets (\"mx\")")
        severity = entry.get("rules_severity", "warning")
        if severity not in ("warning", "error"):
            raise ConfigurationError(f"{where} ({name}): rules_severity must be 'warning' or 'error', not {severity!r}")
        try:
            selected = select_rules(rules)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where} ({name}): {exc}") from exc
        project_prefix = entry.get("project_prefix")
        if project_prefix is not None and (
                not isinstance(project_prefix, str) or not project_prefix.strip() or "/" in project_prefix):
            raise ConfigurationError(f"{where}: project_prefix must be a non-empty string without '/', like "
                                     f"'oc4ids-bu3kcz', not {project_prefix!r}")
        publishers[name] = Publisher(
            name=name,
            prefixes=tuple(prefixes),
            policy=policy,
            token_sha256=entry.get("token_sha256"),
            rate_limit=entry.get("rate_limit"),
            description=entry.get("description", ""),
            extensions=tuple(extensions),
            rules=selected,
            rules_severity=severity,
            project_prefix=project_prefix.strip() if project_prefix else None,
        )
    return Publishers(publishers)
