SELECT count(*) AS n FROM thumbnails t JOIN active_manifest m USING (sample_id) WHERE t.size = $size;
