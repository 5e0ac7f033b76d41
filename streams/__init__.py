"""streams stage of ocds-live."""
