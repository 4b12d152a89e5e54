-- No secret at rest in plaintext. The keys now come from the key file, outside the database; the
-- database keeps only a check value of them (server_secrets 'key_check', written on first start).

-- The key of the verification codes' hashes is derived from the key file now.
DELETE FROM server_secrets WHERE name = 'code_hmac_key';

-- SMS bodies are kept encrypted and erased once a message is sent or has failed for good. Erase
-- the bodies written in plaintext before; messages still waiting are given up (their codes would
-- not verify under the new key, and an invitation can be sent again).
UPDATE sms_outbox SET body = '' WHERE state IN ('sent', 'failed');
UPDATE sms_outbox SET state = 'failed', body = '', lease_until = NULL,
    last_error = 'not sent: given up when message encryption was introduced; send it again'
    WHERE state IN ('pending', 'sending');

-- Answers kept for Idempotency-Key were stored in plaintext (new API keys, app secrets): forget them.
DELETE FROM idempotency_keys;
