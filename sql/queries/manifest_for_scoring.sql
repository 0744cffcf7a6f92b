SELECT sample_id, path, split, label, labels, width, height, mode, bytes, file_sha256, pixel_sha256,
       is_grayscale, brightness_p05, brightness_p50, brightness_p95, entropy, blur_score, edge_strength,
       aspect_ratio, phash, dhash, hue_histogram, data_root
FROM active_manifest
ORDER BY sample_id;
