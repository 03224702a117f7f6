-- device-grant schema, version 1. Applied by device_grant::adapters::postgres::migrate
-- with search_path set to the target schema.

-- One row per device authorization. Codes appear only as hashes: SHA-256 of the
-- device code, HMAC-SHA-256 of the user code.
CREATE TABLE device_grant_authorizations (
    device_code_hash BYTEA PRIMARY KEY,
    -- The user-code index: set while the record is pending, NULL once it leaves
    -- Pending. Its unique index enforces one live holder per user code; a holder
    -- that expired while pending is released by the next insert of its code.
    user_code_hash   BYTEA UNIQUE,
    expires_at       TIMESTAMPTZ NOT NULL,
    purge_at         TIMESTAMPTZ NOT NULL,
    -- The compare-and-set token: every transition is
    -- UPDATE ... WHERE device_code_hash = $1 AND version = $expected.
    version          BIGINT NOT NULL,
    -- The whole record as JSON (serde), the source of truth for everything else.
    record           TEXT NOT NULL
);

-- purge_expired deletes by purge_at.
CREATE INDEX device_grant_authorizations_purge_at
    ON device_grant_authorizations (purge_at);

-- User-code guesses per limiter key (SHA-256 of it) in the current fixed window.
CREATE TABLE device_grant_attempts (
    key_hash     BYTEA PRIMARY KEY,
    window_start TIMESTAMPTZ NOT NULL,
    spent        INTEGER NOT NULL
);

CREATE INDEX device_grant_attempts_window_start
    ON device_grant_attempts (window_start);
