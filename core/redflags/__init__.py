"""Red flags: pure rules over compiled releases (no Kafka, no database, no sockets).

``core.redflags.config`` reads the rules file (``config/redflags.toml``); ``cardinal`` holds the per-process
indicators defined by OCP's Cardinal; ``mexico`` the Mexican rules; ``population`` the indicators that compare
a process or a party with all others (exact R-8 quartiles, as Cardinal's statrs computes them). Every rule
returns :class:`Flag` values: the rule, a stable ``key`` (an alert is stored and delivered once per
``(rule, key)``), the evidence as values with JSON Pointers into the compiled release, and the parties it
names. docs/redflags.md lists every rule with its source.
"""

from core.redflags.types import Evidence, Flag

__all__ = ["Evidence", "Flag"]
