"""consumers stage of ocds-live."""
