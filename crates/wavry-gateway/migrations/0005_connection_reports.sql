-- What the peers report about a session (the `report` signaling message): the path it took and
-- the bytes each side sent. Feeds the dashboard's analytics.
ALTER TABLE connections ADD COLUMN path TEXT;
ALTER TABLE connections ADD COLUMN host_bytes_sent BIGINT;
ALTER TABLE connections ADD COLUMN client_bytes_sent BIGINT;
