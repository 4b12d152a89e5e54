-- Per-enterprise security policy (SPEC section 5) and member passwords.
-- The same schema as migrations/sqlite/0004_policy.sql, with BIGINT for SQLite's 64-bit INTEGER.

CREATE TABLE policies (
    enterprise_id  TEXT PRIMARY KEY REFERENCES enterprises (id),
    settings       TEXT NOT NULL,            -- JSON of the policy fields
    tightened_at   BIGINT NOT NULL,         -- devices verified before this must verify again
    updated_at     BIGINT NOT NULL
);

CREATE TABLE member_passwords (
    member_id      TEXT PRIMARY KEY,
    enterprise_id  TEXT NOT NULL,
    hash           TEXT,                     -- Argon2id PHC string; NULL until set
    must_reset     BIGINT NOT NULL DEFAULT 0,
    failures       BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT NOT NULL DEFAULT 0,
    set_at         BIGINT,
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
