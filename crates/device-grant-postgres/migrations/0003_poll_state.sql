-- device-grant schema, version 3: a pending poll is judged by one statement
-- (PostgresStore's `poll`), on columns of its own. While a record is pending
-- they hold what the statement compares; once it leaves Pending they are NULL.
-- The statement moves `version`, `poll_interval` and `last_poll` without
-- rewriting `record`: while `version` is ahead of the record's own, these
-- columns have the last word. Rows written before this version have NULLs
-- and are judged by the crate until their next transition.
ALTER TABLE device_grant_authorizations
    ADD COLUMN client_id      TEXT,
    -- The PKCE challenge (unpadded base64url), '' for none.
    ADD COLUMN code_challenge TEXT,
    -- The DPoP key the device code is bound to, '' for none.
    ADD COLUMN dpop_jkt       TEXT,
    ADD COLUMN poll_interval  INTEGER,
    ADD COLUMN last_poll      TIMESTAMPTZ;
