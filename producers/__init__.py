"""producers stage of ocds-live."""
