-- Per-client limits (all optional: NULL is unlimited) and the tokens each key spent, per model
-- and UTC day, as the providers reported them.
ALTER TABLE api_keys ADD COLUMN rpm BIGINT;
ALTER TABLE api_keys ADD COLUMN tpm BIGINT;
ALTER TABLE api_keys ADD COLUMN max_parallel BIGINT;
ALTER TABLE api_keys ADD COLUMN daily_tokens BIGINT;
ALTER TABLE api_keys ADD COLUMN monthly_tokens BIGINT;
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMP;
-- Public model names or globs, comma-separated, as `keys add --models` takes them.
ALTER TABLE api_keys ADD COLUMN models TEXT;

CREATE TABLE key_usage (
    key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day DATE NOT NULL,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day, model)
);
