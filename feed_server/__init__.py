"""feed_server stage of ocds-live."""
