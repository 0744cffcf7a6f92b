-- The latest cleaned split's kept and relabelled samples with where their file lives.
SELECT c.sample_id, c.path, c.split, c.label, c.original_label, c.action, c.reason,
       m.data_root, m.labels
FROM cleaned_split c
JOIN manifest m USING (sample_id)
WHERE c.action <> 'drop'
ORDER BY c.split, c.label, c.path;
