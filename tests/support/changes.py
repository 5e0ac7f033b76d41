"""Synthetic change events written through the store's own writer, for feed tests without Kafka."""

from __future__ import annotations

import random
from typing import Any

import psycopg2

from core.settings import Settings
from core.store import writer

BUYERS = [("MX-UC-0001", "Secretaría de Salud"), ("MX-UC-0002", "Comisión Federal de Electricidad"),
          ("MX-UC-0003", "Instituto Mexicano del Seguro Social")]
SUPPLIERS = [("MX-RFC-AAA010101AA1", "Constructora Azteca"), ("MX-RFC-BBB020202BB2", "Farmacéutica del Norte"),
             ("MX-RFC-CCC030303CC3", "Servicios Integrales Peña")]
KINDS = ["tender.published", "award.made", "contract.signed", "contract.amended", "payment.recorded"]


def synthetic_event(rng: random.Random, n: int, padding: int = 0) -> dict[str, Any]:
    buyer = rng.choice(BUYERS)
    suppliers = rng.sample(SUPPLIERS, rng.randint(0, 2))
    kind = rng.choice(KINDS)
    amount = round(rng.lognormvariate(12, 1.5), 2) if rng.random() < 0.9 else None
    return {
        "id": f"evt-{n}", "ocid": f"ocds-07smqs-{rng.randint(1, 40)}", "release_id": f"r-{n}",
        "date": f"2024-01-{1 + n % 28:02d}T10:00:00-06:00", "tags": [kind.split(".")[0]], "kind": kind,
        "kinds": [kind], "publisher": "test",
        "summary": {
            "title": rng.choice(["Adquisición de medicamentos", "Obra pública de carretera", "Servicio de limpieza"]),
            "buyer": {"id": buyer[0], "name": buyer[1]},
            "suppliers": [{"id": s[0], "name": s[1]} for s in suppliers],
            "method": rng.choice(["open", "limited", "direct"]), "category": rng.choice(["goods", "works", "services"]),
            "contract_amount": amount, "currency": "MXN" if amount is not None else None,
        },
        "changes": [{"path": "/tender/title", "op": "replace", "old": None, "new": "x" * padding}],
    }


def append_events(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Append events in one transaction, the way the processor does (gapless, commit-ordered cursors)."""
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn.cursor() as cur:
            numbers = writer.allocate(cur, len(events), 0, 0)
            writer.append_changes(cur, events, settings.base_url, numbers.change)
        conn.commit()
    finally:
        conn.close()
