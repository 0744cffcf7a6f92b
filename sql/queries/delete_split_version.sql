DELETE FROM cleaned_splits WHERE split_version = $split_version;
