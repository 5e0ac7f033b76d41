"""The PostgreSQL store: releases, records, the change log, rejected releases, consumed offsets."""
