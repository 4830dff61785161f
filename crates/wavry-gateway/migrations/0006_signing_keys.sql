-- The gateway's signing key leaves the database (docs/GATEWAY.md, "The signing key"). Its seed
-- lived in gateway_keys, where every backup carried it; it now lives in a key file (0600). The
-- gateway copies a seed found here into that file before this migration runs, so dropping the
-- table loses nothing.
DROP TABLE gateway_keys;

-- The public halves only: what every instance publishes (GET /v1/gateway/signing-keys) and
-- checks its key file against. Nothing here can sign.
CREATE TABLE signing_keys (
    -- Unpadded base64url of the Ed25519 public key.
    public_key TEXT PRIMARY KEY,
    -- Its first 8 bytes in hex: the key_id a signed record names.
    key_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Records signed with it may be valid until then: it is published until then. An instance
    -- signing with it moves this forward every heartbeat.
    publish_until BIGINT NOT NULL,
    -- When a rotation replaced it; NULL for the key new records are signed with.
    retired_at BIGINT
);

-- One current key per database: every instance signs with it, and one that brings another key
-- is refused instead of signing with it.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL;
