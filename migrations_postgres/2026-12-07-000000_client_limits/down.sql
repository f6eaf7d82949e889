DROP TABLE key_usage;
ALTER TABLE api_keys DROP COLUMN models;
ALTER TABLE api_keys DROP COLUMN expires_at;
ALTER TABLE api_keys DROP COLUMN monthly_tokens;
ALTER TABLE api_keys DROP COLUMN daily_tokens;
ALTER TABLE api_keys DROP COLUMN max_parallel;
ALTER TABLE api_keys DROP COLUMN tpm;
ALTER TABLE api_keys DROP COLUMN rpm;
