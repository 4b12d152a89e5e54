-- Per-enterprise security policy (SPEC section 5) and member passwords.

CREATE TABLE policies (
    enterprise_id  TEXT PRIMARY KEY REFERENCES enterprises (id),
    settings       TEXT NOT NULL,            -- JSON of the policy fields
    tightened_at   INTEGER NOT NULL,         -- devices verified before this must verify again
    updated_at     INTEGER NOT NULL
);

CREATE TABLE member_passwords (
    member_id      TEXT PRIMARY KEY,
    enterprise_id  TEXT NOT NULL,
    hash           TEXT,                     -- Argon2id PHC string; NULL until set
    must_reset     INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER NOT NULL DEFAULT 0,
    set_at         INTEGER,
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
