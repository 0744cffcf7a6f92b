SELECT sample_id, path, split, label, original_label, action, reason
FROM cleaned_splits WHERE split_version = $split_version ORDER BY sample_id;
