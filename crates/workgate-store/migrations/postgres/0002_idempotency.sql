-- Idempotency-Key (SPEC section 6): the first answer to an admin POST, replayed for the same key.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,      -- SHA-256 of the credential that sent the request
    key           TEXT NOT NULL,      -- the client's Idempotency-Key
    fingerprint   TEXT NOT NULL,      -- SHA-256 of method, path and body
    state         TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    status        BIGINT,
    content_type  TEXT,
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
