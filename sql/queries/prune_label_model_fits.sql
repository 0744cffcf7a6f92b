-- All but the newest $keep label-model fits of each settings hash: their rows go.
DELETE FROM label_model_fits
WHERE fit_id IN (
    SELECT fit_id FROM (
        SELECT fit_id, row_number() OVER (PARTITION BY settings_hash ORDER BY created_at DESC, fit_id) AS newest
        FROM label_model_fits)
    WHERE newest > $keep);
