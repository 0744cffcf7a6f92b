-- A pair verified in one run and registered or measured in a later one gets the new verdicts added.
INSERT INTO pair_verifications (verifier_version, sample_a, sample_b, mirror, aligned, agreement, registered,
                                crop_distance, whole_distance, crop_difference, grid_difference, grid_relative)
SELECT $verifier_version, sample_a, sample_b, mirror, aligned, agreement, registered,
       crop_distance, whole_distance, crop_difference, grid_difference, grid_relative
FROM _new_pair_verifications
ON CONFLICT DO UPDATE SET
    aligned = COALESCE(excluded.aligned, pair_verifications.aligned),
    agreement = COALESCE(excluded.agreement, pair_verifications.agreement),
    registered = COALESCE(excluded.registered, pair_verifications.registered),
    crop_distance = COALESCE(excluded.crop_distance, pair_verifications.crop_distance),
    whole_distance = COALESCE(excluded.whole_distance, pair_verifications.whole_distance),
    crop_difference = COALESCE(excluded.crop_difference, pair_verifications.crop_difference),
    grid_difference = COALESCE(excluded.grid_difference, pair_verifications.grid_difference),
    grid_relative = COALESCE(excluded.grid_relative, pair_verifications.grid_relative);
