-- A fit stored again (the same rows, settings and network) becomes the newest.
INSERT INTO copy_descriptor_fits (fit_id, settings_hash, settings_json, side, n_rows, n_trained, steps, seconds,
    final_loss, rows_path, network_path, created_at)
VALUES ($fit_id, $settings_hash, $settings_json, $side, $n_rows, $n_trained, $steps, $seconds,
    $final_loss, $rows_path, $network_path, now())
ON CONFLICT (fit_id) DO UPDATE SET created_at = now();
