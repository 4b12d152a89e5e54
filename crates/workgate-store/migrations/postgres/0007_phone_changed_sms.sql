-- SMS to the old and the new number when a member's number changes: a third purpose of the outbox.
-- The same schema as migrations/sqlite/0007_phone_changed_sms.sql.

ALTER TABLE sms_outbox DROP CONSTRAINT sms_outbox_purpose_check;
ALTER TABLE sms_outbox ADD CONSTRAINT sms_outbox_purpose_check
    CHECK (purpose IN ('invitation', 'login_code', 'phone_changed'));
