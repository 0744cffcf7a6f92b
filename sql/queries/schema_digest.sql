-- The schema digest this database was last brought up to (one row, or none).
SELECT digest FROM schema_state;
