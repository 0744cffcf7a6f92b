-- The newest label-model fit made under one settings hash (settings + classifier code).
SELECT fit_id, classes_json, settings_json, n_rows, n_trained, rows_path, models_path
FROM label_model_fits
WHERE settings_hash = $settings_hash
ORDER BY created_at DESC, fit_id
LIMIT 1;
