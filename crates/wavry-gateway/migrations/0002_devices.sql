-- Devices, host sharing, host presence, the gateway's signing key, and connection attempts
-- (docs/SIGNALING.md). Same portable subset as 0001: TEXT and BIGINT, gateway-made ids,
-- Unix seconds.

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- 'host' or 'client'.
    kind TEXT NOT NULL,
    -- The device's static X25519 RIFT key, standard padded base64.
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When a host was last online (set as it goes offline).
    last_seen BIGINT,
    -- One registration of a key per account; another account registering the same key cannot
    -- block its owner's.
    UNIQUE (user_id, public_key)
);

CREATE INDEX devices_user_id ON devices (user_id);

-- Accounts a host's owner lets connect to it.
CREATE TABLE host_shares (
    host_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, user_id)
);

CREATE INDEX host_shares_user_id ON host_shares (user_id);

-- Hosts online now: one row per host connected to some gateway instance, refreshed by that
-- instance every heartbeat. A row older than three heartbeats is offline (its instance died).
CREATE TABLE host_presence (
    host_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    since BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);

CREATE INDEX host_presence_instance ON host_presence (instance_id);

-- Keys the gateway signs with, shared by every instance on this database. 'host_records':
-- the Ed25519 seed (unpadded base64url) host records are signed with.
CREATE TABLE gateway_keys (
    purpose TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Connection attempts and sessions brokered over signaling (analytics build on it). No
-- foreign keys: the history outlives the devices.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL,
    host_user_id TEXT NOT NULL,
    client_device_id TEXT NOT NULL,
    client_user_id TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    accepted_at BIGINT,
    ended_at BIGINT,
    end_reason TEXT
);

CREATE INDEX connections_requested_at ON connections (requested_at);
