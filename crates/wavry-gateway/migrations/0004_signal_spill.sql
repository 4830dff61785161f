-- Notices between gateway instances too large for PostgreSQL's NOTIFY (8000 bytes): the
-- notice names the row (docs/SIGNALING.md, "Several instances"). Unused on SQLite.
CREATE TABLE signal_spill (
    id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
