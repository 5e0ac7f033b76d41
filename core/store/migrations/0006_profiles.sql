-- ocds-live store, version 6: profiles (OCDS extensions). Applied by `ocds-live db migrate`.
--
-- A release is validated and merged with the extensions its package declares, plus its publisher's
-- (core.profiles): releases.extensions keeps that set, sorted. A record is merged with the union of its
-- releases' sets: records.extensions. Packages served by the API declare these sets. A rejected release
-- keeps the extensions its package declared (rejected.extensions), so `ocds-live rejected retry` re-sends
-- them. Rows written before this version declared none.

ALTER TABLE releases ADD COLUMN extensions text[] NOT NULL DEFAULT '{}';
ALTER TABLE records ADD COLUMN extensions text[] NOT NULL DEFAULT '{}';
ALTER TABLE rejected ADD COLUMN extensions text[] NOT NULL DEFAULT '{}';
