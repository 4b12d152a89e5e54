-- OpenID Connect (SPEC section 4): apps, signing keys, authorization codes, grants and app tokens.

-- An enterprise's app; its id is the OAuth client_id.
CREATE TABLE apps (
    id                         TEXT PRIMARY KEY,
    enterprise_id              TEXT NOT NULL REFERENCES enterprises (id),
    name                       TEXT NOT NULL,
    client_type                TEXT NOT NULL,          -- confidential | public
    secret_hash                TEXT,                   -- SHA-256 of the client secret; NULL for public apps
    redirect_uris              TEXT NOT NULL,          -- JSON array, matched exactly
    post_logout_redirect_uris  TEXT NOT NULL,          -- JSON array
    scopes                     TEXT NOT NULL,          -- JSON array of the scopes it may ask for
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);
CREATE INDEX apps_enterprise ON apps (enterprise_id, id);

-- ID-token signing keys, shared by every node; generation 1, 2, 3, … (see oidc/keys.rs).
CREATE TABLE signing_keys (
    generation   INTEGER PRIMARY KEY,
    kid          TEXT NOT NULL UNIQUE,
    alg          TEXT NOT NULL,
    private_pem  TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    signs_from   INTEGER NOT NULL
);

-- What one authorization gave one app over one member: the family of its tokens.
CREATE TABLE oidc_grants (
    id              TEXT PRIMARY KEY,
    enterprise_id   TEXT NOT NULL,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    member_id       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    auth_time       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_reason  TEXT,
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
CREATE INDEX oidc_grants_member ON oidc_grants (enterprise_id, member_id);
CREATE INDEX oidc_grants_app ON oidc_grants (app_id);

-- Authorization codes, by hash; a redeemed code remembers its grant, so a replay revokes it.
CREATE TABLE oidc_codes (
    code_hash       TEXT PRIMARY KEY,
    enterprise_id   TEXT NOT NULL,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    member_id       TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT NOT NULL,
    auth_time       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    grant_id        TEXT,
    FOREIGN KEY (enterprise_id, member_id) REFERENCES members (enterprise_id, id)
);
CREATE INDEX oidc_codes_app ON oidc_codes (app_id);

-- App access and refresh tokens, by hash. `spent_at`: a refresh token rotated away, or an
-- access token revoked on its own.
CREATE TABLE oidc_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,                 -- access | refresh
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    spent_at    INTEGER
);
CREATE INDEX oidc_tokens_grant ON oidc_tokens (grant_id);
