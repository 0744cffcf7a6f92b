-- Relative paths (the shard views' files) resolve in the quality home, whatever the working folder.
SET file_search_path = '{home}';
