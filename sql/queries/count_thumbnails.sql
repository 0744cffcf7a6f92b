SELECT count(*) AS n FROM thumbnails t JOIN raw_manifest m USING (sample_id) WHERE t.size = $size;
