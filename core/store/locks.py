"""PostgreSQL advisory lock ids, in one place so that every stage takes the same lock."""

MIGRATE_LOCK = 0x0CD5_0001  # two `db migrate` at once apply each file once
RELAY_LOCK = 0x0CD5_0002  # one relay publishes the change log at a time; replay holds it to publish nothing
PROJECT_BUILDER_LOCK = 0x0CD5_0003  # one project builder rebuilds marked projects at a time
