-- The newest copy-descriptor fit made under one settings hash (SSL backbone, settings, descriptor code).
SELECT fit_id, settings_json, side, n_rows, n_trained, steps, seconds, final_loss, rows_path, network_path
FROM copy_descriptor_fits
WHERE settings_hash = $settings_hash
ORDER BY created_at DESC, fit_id
LIMIT 1;
