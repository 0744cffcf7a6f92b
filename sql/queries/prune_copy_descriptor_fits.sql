-- All but the newest $keep copy-descriptor fits of each settings hash: their rows go.
DELETE FROM copy_descriptor_fits
WHERE fit_id IN (
    SELECT fit_id FROM (
        SELECT fit_id, row_number() OVER (PARTITION BY settings_hash ORDER BY created_at DESC, fit_id) AS newest
        FROM copy_descriptor_fits)
    WHERE newest > $keep);
