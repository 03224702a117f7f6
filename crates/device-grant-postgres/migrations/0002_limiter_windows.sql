-- device-grant schema, version 2: limiter counters are one key and one window
-- length (the key hash covers both), and each row says when its window ends so
-- that AttemptLimiter::purge_expired can delete it without knowing the budget.
DELETE FROM device_grant_attempts;
ALTER TABLE device_grant_attempts ADD COLUMN window_end TIMESTAMPTZ NOT NULL;
CREATE INDEX device_grant_attempts_window_end ON device_grant_attempts (window_end);
DROP INDEX IF EXISTS device_grant_attempts_window_start;
