"""What two or more ocds-live stages share: settings, OCDS domain logic, the store, the envelope.

The OCDS modules (:mod:`core.validate`, :mod:`core.merge`, :mod:`core.changes`) are pure: dicts in,
dicts out, no Kafka, database or socket import.
"""
