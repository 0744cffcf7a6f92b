-- The cleaned split with where each sample's file lives, for a consumer that trains on the pixels.
SELECT c.sample_id, c.split, c.label, c.original_label, c.action, m.data_root || '/' || c.path AS file
FROM cleaned_split c
JOIN manifest m USING (sample_id)
ORDER BY c.sample_id;
