-- Current manifest's thumbnails of one size, in the manifest's stable order.
SELECT t.sample_id, t.pixels
FROM thumbnails t JOIN active_manifest m USING (sample_id)
WHERE t.size = $size
ORDER BY t.sample_id;
