-- Client API keys (PostgreSQL, for several replicas). The key itself is never stored: only its
-- SHA-256 (hex) and a short prefix that lets an operator recognise it in `glm-proxy keys list`.
CREATE TABLE api_keys (
    id SERIAL PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP,
    request_count BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX api_keys_name ON api_keys (name);
