-- A login_id is a bearer capability: login_challenges.id now holds its reference (a hash of it),
-- so challenges started before this version can no longer be moved on. They expire in minutes.
DELETE FROM login_challenges;

-- The enterprises a login could go to when it started: the only ones that see its events before
-- it chose one (comma-separated enterprise ids).
ALTER TABLE login_challenges ADD COLUMN candidates TEXT NOT NULL DEFAULT '';
ALTER TABLE login_events ADD COLUMN candidates TEXT NOT NULL DEFAULT '';
-- Events written before this version named the login_id itself in their details.
UPDATE login_events SET details = '{}' WHERE details LIKE '%login_id%';

-- Consecutive wrong codes, counted per number and client network (subject
-- 'network:<phone>:<network>') and per number ('number:<phone>', a much higher ceiling).
CREATE TABLE failure_locks (
    subject       TEXT PRIMARY KEY,
    phone         TEXT NOT NULL,
    consecutive   INTEGER NOT NULL,
    locked_until  INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL    -- kept 7 days after the last failure and the lock's end
);
CREATE INDEX failure_locks_phone ON failure_locks (phone);
DROP TABLE phone_failures;
