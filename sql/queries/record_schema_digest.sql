-- Record the digest of the schema and views just applied.
DELETE FROM schema_state;
INSERT INTO schema_state VALUES ($digest);
