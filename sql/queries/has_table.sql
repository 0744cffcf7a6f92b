-- Whether the database has a table: a read-only connection does not apply the schema, so a store
-- written by an older release may lack the tables added since.
SELECT count(*) > 0 AS present FROM duckdb_tables() WHERE table_name = $table_name;
