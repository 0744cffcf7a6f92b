INSERT INTO ssl_models (model_version, embedder_kind, arch, config_json, config_hash, code_version,
    checkpoint_path, checkpoint_sha256, manifest_version, n_samples_trained, epochs, final_loss,
    loss_curve, images_per_s, seconds, stopped_by_budget, device, dim, created_at)
VALUES ($model_version, $embedder_kind, $arch, $config_json, $config_hash, $code_version,
    $checkpoint_path, $checkpoint_sha256, $manifest_version, $n_samples_trained, $epochs, $final_loss,
    $loss_curve, $images_per_s, $seconds, $stopped_by_budget, $device, $dim, now())
ON CONFLICT (model_version) DO UPDATE SET created_at = now();
