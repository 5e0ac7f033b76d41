"""ocds_live stage of ocds-live."""
