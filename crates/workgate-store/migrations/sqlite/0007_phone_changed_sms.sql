-- SMS to the old and the new number when a member's number changes: a third purpose of the outbox.
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt. Foreign keys stay on inside the
-- migration's transaction: the invitations' links to their SMS are set aside while the old table
-- is dropped, and put back once the new one has its name.

CREATE TABLE sms_outbox_new (
    id               TEXT PRIMARY KEY,
    enterprise_id    TEXT,                 -- whose budget it counts against, when known
    phone            TEXT NOT NULL,
    body             TEXT NOT NULL,
    purpose          TEXT NOT NULL CHECK (purpose IN ('invitation', 'login_code', 'phone_changed')),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,              -- a sender owns a 'sending' row until then
    provider         TEXT,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER
);
INSERT INTO sms_outbox_new (id, enterprise_id, phone, body, purpose, state, attempts, next_attempt_at, lease_until,
                            provider, last_error, created_at, sent_at)
    SELECT id, enterprise_id, phone, body, purpose, state, attempts, next_attempt_at, lease_until, provider,
           last_error, created_at, sent_at
    FROM sms_outbox;

CREATE TABLE invitation_sms_links (id TEXT PRIMARY KEY, sms_id TEXT NOT NULL);
INSERT INTO invitation_sms_links (id, sms_id) SELECT id, sms_id FROM invitations WHERE sms_id IS NOT NULL;
UPDATE invitations SET sms_id = NULL WHERE sms_id IS NOT NULL;

DROP TABLE sms_outbox;
ALTER TABLE sms_outbox_new RENAME TO sms_outbox;
CREATE INDEX sms_outbox_due ON sms_outbox (state, next_attempt_at);

UPDATE invitations SET sms_id = (SELECT l.sms_id FROM invitation_sms_links l WHERE l.id = invitations.id)
    WHERE id IN (SELECT id FROM invitation_sms_links);
DROP TABLE invitation_sms_links;
