-- Which active samples hold a thumbnail of one size: a thumbnail is a function of its sample's bytes,
-- so this set (with the code version) determines the pixel view.
SELECT coalesce(md5(string_agg(t.sample_id, ',' ORDER BY t.sample_id)), 'empty') AS thumbnail_set_version,
       count(*) AS n_thumbnails
FROM thumbnails t JOIN active_manifest m USING (sample_id)
WHERE t.size = $size;
