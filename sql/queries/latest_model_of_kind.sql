SELECT * FROM ssl_models WHERE embedder_kind = $kind ORDER BY created_at DESC LIMIT 1;
