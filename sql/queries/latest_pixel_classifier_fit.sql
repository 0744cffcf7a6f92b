-- The newest pixel-classifier fit made under one settings hash (settings + classifier code).
SELECT fit_id, classes_json, settings_json, side, n_rows, n_trained, rows_path, folds_path
FROM pixel_classifier_fits
WHERE settings_hash = $settings_hash
ORDER BY created_at DESC, fit_id
LIMIT 1;
