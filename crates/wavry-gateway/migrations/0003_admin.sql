-- Bans and the audit log (docs/ADMIN.md).

CREATE TABLE bans (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- NULL: permanent.
    expires_at BIGINT
);

-- Every admin action and security event. Kept when the account it names is deleted.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    -- 'admin', 'user:<id>' or 'anonymous'.
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    detail TEXT
);

CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_action_at ON audit_log (action, at_ms);
