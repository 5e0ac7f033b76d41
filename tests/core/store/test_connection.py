"""psycopg2's errors become the store's own at one boundary: what to retry and what is a refusal."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest

from core.exceptions import StoreError, StoreUnavailableError
from core.store.connection import translated_errors


def test_a_connection_lost_mid_statement_is_unavailable_not_refused() -> None:
    """The bare DatabaseError psycopg2 raises when the server vanished during a statement (seen in the soak,
    at PostgreSQL's immediate shutdown) means "retry", not "this input is refused"."""
    with pytest.raises(StoreUnavailableError, match="server closed the connection"), translated_errors():
        raise psycopg2.DatabaseError("server closed the connection unexpectedly")


def test_a_refusal_with_a_sqlstate_stays_a_refusal() -> None:
    """An error the server answered with a SQLSTATE (here a unique violation) is a StoreError, not a retry."""
    with pytest.raises(StoreError) as caught, translated_errors():
        raise psycopg2.errors.UniqueViolation("duplicate key")
    assert not isinstance(caught.value, StoreUnavailableError)


def test_redacted_hides_the_password_and_keeps_where() -> None:
    """Messages name the server without its password."""
    from core.store.connection import redacted

    assert redacted("postgresql://ocds:s3cret@db.example:5433/live") == "postgresql://ocds:***@db.example:5433/live"
    assert redacted("postgresql://ocds@db.example/live") == "postgresql://ocds@db.example/live"
