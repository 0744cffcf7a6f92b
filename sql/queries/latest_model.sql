SELECT * FROM ssl_models ORDER BY created_at DESC LIMIT 1;
