-- SMS outbox, invitations, Enterprise Login challenges, devices, sessions, limits and login events.
-- The same schema as migrations/sqlite/0003_login.sql, with BIGINT for SQLite's 64-bit INTEGER.

-- Secrets the server generates once and every node shares (e.g. the key of the code hashes).
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Written in the same transaction as the state that needs the message; delivered by the sender.
CREATE TABLE sms_outbox (
    id               TEXT PRIMARY KEY,
    enterprise_id    TEXT,                 -- whose budget it counts against, when known
    phone            TEXT NOT NULL,
    body             TEXT NOT NULL,
    purpose          TEXT NOT NULL CHECK (purpose IN ('invitation', 'login_code')),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,              -- a sender owns a 'sending' row until then
    provider         TEXT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX sms_outbox_due ON sms_outbox (state, next_attempt_at);

CREATE TABLE invitations (
    id             TEXT PRIMARY KEY,
    enterprise_id  TEXT NOT NULL,
    member_id      TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,   -- SHA-256 of the link's token
    sms_id         TEXT REFERENCES sms_outbox (id),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'replaced', 'used', 'cancelled')),
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
CREATE INDEX invitations_member ON invitations (enterprise_id, member_id, id);

-- One Enterprise Login in progress (`login_id`), with its newest code.
CREATE TABLE login_challenges (
    id               TEXT PRIMARY KEY,
    phone            TEXT NOT NULL,
    code_hash        TEXT NOT NULL,         -- HMAC-SHA256(server key, login id ‖ code)
    code_sent_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    failed_attempts  BIGINT NOT NULL DEFAULT 0,
    step             TEXT NOT NULL CHECK (step IN ('code', 'enterprise', 'password', 'set_password',
                                                   'pending_approval', 'done', 'locked')),
    enterprise_id    TEXT,                  -- fixed by an invitation, or chosen
    member_id        TEXT,                  -- fixed once the enterprise is
    invitation_id    TEXT,
    device_id        TEXT,                  -- the client's device, when it has one
    device_name      TEXT,
    ip               TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX login_challenges_phone ON login_challenges (phone, created_at);

CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    enterprise_id  TEXT NOT NULL,
    member_id      TEXT NOT NULL,
    name           TEXT,
    platform       TEXT,
    app_version    TEXT,
    ip             TEXT,
    state          TEXT NOT NULL CHECK (state IN ('trusted', 'pending', 'revoked')),
    first_seen_at  BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    verified_at    BIGINT NOT NULL,        -- last SMS-verified login on this device
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
CREATE INDEX devices_member ON devices (enterprise_id, member_id);

-- A signed-in device: the current access token and refresh token of one login's family.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    enterprise_id      TEXT NOT NULL,
    member_id          TEXT NOT NULL,
    device_id          TEXT NOT NULL REFERENCES devices (id),
    access_hash        TEXT NOT NULL UNIQUE,
    access_expires_at  BIGINT NOT NULL,
    refresh_hash       TEXT NOT NULL UNIQUE,
    created_at         BIGINT NOT NULL,
    refreshed_at       BIGINT NOT NULL,
    revoked_at         BIGINT,
    revoked_reason     TEXT,
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
CREATE INDEX sessions_member ON sessions (enterprise_id, member_id);
CREATE INDEX sessions_device ON sessions (device_id);

-- Refresh tokens already rotated away: presenting one again revokes its session (family).
CREATE TABLE used_refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    used_at     BIGINT NOT NULL
);

-- Fixed-window counters for every limit (per number, per IP, per network, SMS budgets).
CREATE TABLE rate_counters (
    bucket        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);

-- Consecutive wrong codes of a number across challenges; cleared by a success or an admin.
CREATE TABLE phone_failures (
    phone         TEXT PRIMARY KEY,
    consecutive   BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL
);

-- What happened during logins, for the support view and the audit trail.
CREATE TABLE login_events (
    id             TEXT PRIMARY KEY,
    phone          TEXT NOT NULL,
    enterprise_id  TEXT,
    member_id      TEXT,
    kind           TEXT NOT NULL,
    ip             TEXT,
    at             BIGINT NOT NULL,
    details        TEXT NOT NULL
);
CREATE INDEX login_events_phone ON login_events (phone, id);
