"""The rules file (``config/redflags.toml``): every threshold the rules use, read once into frozen dataclasses.

A missing key takes the default written here (the same as the shipped file); an unknown key or a wrong type
fails with the key's name, so a typo never silently disables a rule.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.exceptions import ConfigurationError


@dataclass(frozen=True)
class MaxAmount:
    """One row of the table of legal maximums: up to ``direct`` a buying unit of this band may award directly,
    up to ``invitation`` by invitation to at least three (amounts in MXN, VAT excluded, per operation)."""

    year: int
    law: str  # "LAASSP" (goods and services) or "LOPSRM" (public works)
    band: int  # the buying unit's band in the annex (by its authorised budget), 1 = the smallest
    direct: float
    invitation: float
    source: str
    last_year: int | None = None  # the row holds from ``year`` to ``last_year`` (None: ``year`` only)
    status: str = "unverified"  # "verified": copied from the decree in the DOF; alerts carry it

    def covers(self, year: int) -> bool:
        return self.year <= year <= (self.last_year if self.last_year is not None else self.year)


@dataclass(frozen=True)
class RulesConfig:
    # Cardinal (names and defaults as in ocdscardinal 0.0.8)
    r003_threshold: int = 15
    r003_procurement_methods: tuple[str, ...] = ("open",)
    r003_procurement_method_details_thresholds: dict[str, int] = field(default_factory=dict)
    r018_procurement_methods: tuple[str, ...] = ("open", "selective")
    r035_threshold: int = 1
    no_price_comparison_procurement_methods: tuple[str, ...] = ()
    price_comparison_procurement_methods: tuple[str, ...] = ()
    r024_threshold: float | None = None  # a fixed lower fence instead of Q1 - 1.5 IQR
    r058_threshold: float | None = None  # a fixed upper fence instead of Q3 + 1.5 IQR
    r038_threshold: float | None = None
    r038_minimum_submitted_bids: int = 2
    r038_minimum_contracting_processes: int = 2
    min_population: int = 20  # population indicators stay quiet until this many values exist (0: Cardinal)
    # Mexico
    direct_methods: tuple[str, ...] = ("direct",)
    invitation_methods: tuple[str, ...] = ("selective", "limited")
    works_categories: tuple[str, ...] = ("works",)
    max_amounts: tuple[MaxAmount, ...] = ()
    buyer_bands: dict[str, int] = field(default_factory=dict)
    default_band: int = 0  # the band of a buyer not in buyer_bands; 0: the largest band of the year and law
    repeated_window_days: float = 90.0
    repeated_min_awards: int = 3
    amendment_max_raise_goods: float = 0.20
    amendment_max_raise_works: float = 0.25
    late_publication_days: float = 90.0
    signed_before_tolerance_days: float = 0.0
    # Infrastructure projects (OC4IDS)
    project_cost_overrun_share: float = 0.25  # PROJECT-COST-OVERRUN: cost above budget by more than this share


_FLAT = {f.name for f in fields(RulesConfig)} - {"max_amounts"}


def _typed(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"rules file: {name} must be a list of strings")
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigurationError(f"rules file: {name} must be a table")
        return dict(value)
    if isinstance(default, bool) or (default is not None and not isinstance(value, int | float)):
        raise ConfigurationError(f"rules file: {name} must be a number, not {value!r}")
    if default is None and not isinstance(value, int | float):
        raise ConfigurationError(f"rules file: {name} must be a number, not {value!r}")
    return type(default)(value) if default is not None else float(value)


def parse_config(data: dict[str, Any]) -> RulesConfig:
    """The rules from a parsed TOML document (its ``[rules]`` table and ``[[max_amounts]]`` rows)."""
    defaults = RulesConfig()
    values: dict[str, Any] = {}
    settings = dict(data.get("rules", {}))
    table: list[Any] = data.get("max_amounts") or settings.pop("max_amounts", None) or []  # or rules.max_amounts
    for name, value in settings.items():
        if name not in _FLAT:
            raise ConfigurationError(f"rules file: unknown setting rules.{name}; see docs/redflags.md")
        values[name] = _typed(f"rules.{name}", value, getattr(defaults, name))
    rows = []
    for i, row in enumerate(table):
        try:
            unknown = set(row) - {f.name for f in fields(MaxAmount)}
            if unknown or row.get("status", "unverified") not in ("verified", "unverified"):
                raise ValueError(f"unknown keys {sorted(unknown)}" if unknown else "status: verified or unverified")
            last = row.get("last_year")
            rows.append(MaxAmount(year=int(row["year"]), law=str(row["law"]), band=int(row["band"]),
                                  direct=float(row["direct"]), invitation=float(row["invitation"]),
                                  source=str(row["source"]), last_year=None if last is None else int(last),
                                  status=str(row.get("status", "unverified"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"rules file: max_amounts[{i}] needs year, law, band, direct, invitation "
                                     f"and source; may have last_year and status ({exc})") from exc
    return RulesConfig(**values, max_amounts=tuple(rows))


def load_config(path: Path) -> RulesConfig:
    """Read the rules file; fails with its path when it is missing or not TOML."""
    try:
        return parse_config(tomllib.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the rules file {path}: {exc}; set OCDS_LIVE_REDFLAGS_FILE") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"the rules file {path} is not valid TOML: {exc}") from exc
