-- Retention: the pruning pass (workgate-store/src/retention.rs) finds old rows by these times,
-- a batch at a time, without reading whole tables. Partial indexes where most rows have no value.

CREATE INDEX login_challenges_expires ON login_challenges (expires_at);
CREATE INDEX login_events_at ON login_events (at);
CREATE INDEX invitations_expires ON invitations (expires_at);
-- A message an invitation names is kept with the invitation.
CREATE INDEX invitations_sms ON invitations (sms_id);
CREATE INDEX sms_outbox_created ON sms_outbox (created_at);
CREATE INDEX used_refresh_tokens_used ON used_refresh_tokens (used_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_refreshed ON sessions (refreshed_at);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires_at);
CREATE INDEX oidc_tokens_expires ON oidc_tokens (expires_at);
CREATE INDEX oidc_tokens_spent ON oidc_tokens (spent_at) WHERE spent_at IS NOT NULL;
CREATE INDEX oidc_grants_revoked ON oidc_grants (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX oidc_grants_created ON oidc_grants (created_at);
CREATE INDEX rate_counters_window ON rate_counters (window_start);
CREATE INDEX audit_log_at ON audit_log (at);
