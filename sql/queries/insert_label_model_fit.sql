-- A fit stored again (the same rows, settings and models) becomes the newest.
INSERT INTO label_model_fits (fit_id, settings_hash, settings_json, classes_json, n_rows, n_trained, rows_path,
    models_path, created_at)
VALUES ($fit_id, $settings_hash, $settings_json, $classes_json, $n_rows, $n_trained, $rows_path, $models_path, now())
ON CONFLICT (fit_id) DO UPDATE SET created_at = now();
