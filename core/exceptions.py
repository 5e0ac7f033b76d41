"""One exception tree for ocds-live.

::

    OcdsLiveError
    ├── ConfigurationError (ValueError)
    │   └── MissingSettingError
    ├── SchemaUnavailableError
    │   └── ExtensionUnavailableError    a declared OCDS extension: not found, not downloadable
    ├── ServiceError
    │   ├── ToolMissingError
    │   ├── PortInUseError
    │   └── ServiceStartError
    ├── ReleaseError (ValueError)        carries where: ocid, release id, topic/partition/offset
    │   ├── InvalidReleaseError          carries the findings that rejected it
    │   └── MergeConflictError           ocdsmerge cannot merge (e.g. scalar vs object)
    ├── StoreError
    │   └── StoreUnavailableError
    ├── BrokerError
    │   └── BrokerUnavailableError
    └── PublisherError
        ├── AuthenticationError
        └── PrefixNotAllowedError

Messages are lower-case, say where, what, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """Where a piece of data came from: the context every data error message carries."""

    ocid: str | None = None
    release_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.ocid is not None:
            parts.append(f"ocid={self.ocid}")
        if self.release_id is not None:
            parts.append(f"release={self.release_id}")
        if self.topic is not None:
            parts.append(f"at {self.topic}[{self.partition}]@{self.offset}")
        return " ".join(parts) if parts else "unknown location"


class OcdsLiveError(Exception):
    """The root of every error ocds-live raises on purpose."""


class ConfigurationError(OcdsLiveError, ValueError):
    """A setting or configuration file is wrong."""


class MissingSettingError(ConfigurationError):
    """A required setting has no value."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is missing, and has no default")
        self.name = name


class SchemaUnavailableError(OcdsLiveError):
    """The OCDS schema could be neither read from a folder nor downloaded."""


class ExtensionUnavailableError(SchemaUnavailableError):
    """A declared OCDS extension could be neither read from a folder or the cache nor downloaded."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the extension {url} is unavailable: {reason}; put its files in "
                         f"OCDS_LIVE_EXTENSIONS_DIR (see docs/profiles.md) or allow its download")
        self.url = url
        self.reason = reason


class ServiceError(OcdsLiveError):
    """A local service (Kafka, PostgreSQL) could not be managed."""


class ToolMissingError(ServiceError):
    """A program the local services need (java, mvn) is not installed."""


class PortInUseError(ServiceError):
    """A port a local service needs is taken by another process."""


class ServiceStartError(ServiceError):
    """A local service started but did not become ready."""


@dataclass
class Finding:
    """One problem found in a release: where (JSON Pointer), which rule, and what."""

    pointer: str
    rule: str
    message: str
    severity: str = "error"  # "error" rejects under the strict policy; "warning" never rejects

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "rule": self.rule, "message": self.message, "severity": self.severity}


class ReleaseError(OcdsLiveError, ValueError):
    """Something is wrong with one release; ``where`` says which and where it came from."""

    def __init__(self, message: str, where: Where | None = None) -> None:
        self.where = where or Where()
        self.detail = message
        super().__init__(f"{message} ({self.where})")


class InvalidReleaseError(ReleaseError):
    """A release was rejected; ``findings`` says why."""

    def __init__(self, findings: list[Finding], where: Where | None = None) -> None:
        self.findings = findings
        first = findings[0] if findings else Finding("", "unknown", "rejected")
        more = f" and {len(findings) - 1} more" if len(findings) > 1 else ""
        super().__init__(f"invalid release: {first.pointer or '/'}: {first.message}{more}", where)


class MergeConflictError(ReleaseError):
    """ocdsmerge's rules cannot merge this release into its record."""


class StoreError(OcdsLiveError):
    """The PostgreSQL store failed."""


class StoreUnavailableError(StoreError):
    """PostgreSQL cannot be reached; retry later."""


class BrokerError(OcdsLiveError):
    """Kafka refused or failed a request."""


class BrokerUnavailableError(BrokerError):
    """Kafka cannot be reached; retry later."""


class PublisherError(OcdsLiveError):
    """A publisher may not do what it asked."""


class AuthenticationError(PublisherError):
    """No token, or a token no publisher holds."""


class PrefixNotAllowedError(PublisherError):
    """A publisher sent an ocid outside its registered prefixes."""

    def __init__(self, publisher: str, ocid: str, allowed: list[str]) -> None:
        self.publisher, self.ocid, self.allowed = publisher, ocid, allowed
        super().__init__(
            f"publisher {publisher!r} may not publish ocid {ocid!r}: its prefixes are "
            f"{', '.join(allowed) or 'none'}; register the prefix in the publishers file"
        )

