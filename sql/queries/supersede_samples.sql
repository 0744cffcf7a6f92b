-- Take samples out of the active manifest (registered frame `_superseded`).
INSERT INTO superseded_samples (sample_id, reason, detail, superseded_by, superseded_at)
SELECT sample_id, reason, detail, superseded_by, now() FROM _superseded
ON CONFLICT (sample_id) DO NOTHING;
