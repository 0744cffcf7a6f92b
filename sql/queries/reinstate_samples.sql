-- Samples whose recorded bytes are back at their path return to the active manifest.
DELETE FROM superseded_samples WHERE sample_id IN (SELECT sample_id FROM _reinstated);
