-- A fit stored again (the same rows, settings and networks) becomes the newest.
INSERT INTO pixel_classifier_fits (fit_id, settings_hash, settings_json, classes_json, side, n_rows, n_trained,
    rows_path, folds_path, created_at)
VALUES ($fit_id, $settings_hash, $settings_json, $classes_json, $side, $n_rows, $n_trained,
    $rows_path, $folds_path, now())
ON CONFLICT (fit_id) DO UPDATE SET created_at = now();
