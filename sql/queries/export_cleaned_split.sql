SELECT sample_id, path, split, label, action, reason, original_label FROM cleaned_split ORDER BY path;
