-- The directory: enterprises, their department trees, members, API keys and the audit log.
-- The same schema as migrations/sqlite/0001_directory.sql, in PostgreSQL's types: times are
-- BIGINT milliseconds since the Unix epoch (UTC); ids are opaque prefixed UUIDv7 TEXT; every
-- integer is BIGINT (SQLite's INTEGER is 64-bit).

CREATE TABLE enterprises (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    region      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE departments (
    id             TEXT PRIMARY KEY,
    enterprise_id  TEXT NOT NULL REFERENCES enterprises (id),
    parent_id      TEXT,
    name           TEXT NOT NULL,
    sort_order     BIGINT NOT NULL,
    -- '/<root id>/<child id>/…/<own id>/': a subtree is a range of paths. Compared bytewise
    -- (COLLATE "C"), as SQLite does: a language's collation would ignore the '/' and break ranges.
    path           TEXT COLLATE "C" NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (enterprise_id, id),
    FOREIGN KEY (enterprise_id, parent_id) REFERENCES departments (enterprise_id, id)
);
CREATE UNIQUE INDEX departments_sibling_name ON departments (enterprise_id, parent_id, name);
CREATE UNIQUE INDEX departments_one_root ON departments (enterprise_id) WHERE parent_id IS NULL;
CREATE INDEX departments_path ON departments (enterprise_id, path);

CREATE TABLE members (
    id                    TEXT PRIMARY KEY,
    enterprise_id         TEXT NOT NULL REFERENCES enterprises (id),
    userid                TEXT NOT NULL,
    userid_key            TEXT NOT NULL,   -- lowercase userid: uniqueness ignores case
    name                  TEXT NOT NULL,
    name_key              TEXT NOT NULL,   -- lowercase name, for search
    phone                 TEXT NOT NULL,   -- E.164
    email                 TEXT,
    title                 TEXT,
    department_ids        TEXT NOT NULL,   -- comma-separated, as the member lists them
    role                  TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'department_admin', 'member')),
    admin_department_ids  TEXT NOT NULL,   -- comma-separated subtree roots of a department_admin
    status                TEXT NOT NULL CHECK (status IN ('invited', 'active', 'disabled', 'departed')),
    created_at            BIGINT NOT NULL,
    activated_at          BIGINT,
    updated_at            BIGINT NOT NULL,
    UNIQUE (enterprise_id, id)
);
-- A number and a userid are unique among the members who have not departed; a departed record is
-- kept for audit and its number can be added again as a new member.
CREATE UNIQUE INDEX members_phone ON members (enterprise_id, phone) WHERE status <> 'departed';
CREATE UNIQUE INDEX members_userid ON members (enterprise_id, userid_key) WHERE status <> 'departed';
-- Enterprise Login finds every membership of a number.
CREATE INDEX members_phone_any ON members (phone);

-- Membership of departments, for filtering by subtree. Kept in step with members.department_ids.
CREATE TABLE member_departments (
    enterprise_id  TEXT NOT NULL,
    member_id      TEXT NOT NULL,
    department_id  TEXT NOT NULL,
    PRIMARY KEY (member_id, department_id),
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id) ON DELETE CASCADE,
    FOREIGN KEY (enterprise_id, department_id) REFERENCES departments (enterprise_id, id)
);
CREATE INDEX member_departments_department ON member_departments (department_id, member_id);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    enterprise_id  TEXT NOT NULL REFERENCES enterprises (id),
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,          -- first characters, to tell keys apart
    secret_hash    TEXT NOT NULL UNIQUE,   -- SHA-256 of the key; the key itself is never stored
    created_at     BIGINT NOT NULL
);
CREATE INDEX api_keys_enterprise ON api_keys (enterprise_id, id);

CREATE TABLE audit_log (
    id             TEXT PRIMARY KEY,       -- time-ordered
    enterprise_id  TEXT NOT NULL REFERENCES enterprises (id),
    at             BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    target         TEXT,
    ip             TEXT,
    details        TEXT NOT NULL           -- JSON
);
CREATE INDEX audit_log_enterprise ON audit_log (enterprise_id, id);
