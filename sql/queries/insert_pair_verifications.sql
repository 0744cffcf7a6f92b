-- A pair verified in one run and registered in a later one gets its registration added.
INSERT INTO pair_verifications (verifier_version, sample_a, sample_b, mirror, aligned, agreement, registered)
SELECT $verifier_version, sample_a, sample_b, mirror, aligned, agreement, registered FROM _new_pair_verifications
ON CONFLICT DO UPDATE SET
    aligned = COALESCE(excluded.aligned, pair_verifications.aligned),
    agreement = COALESCE(excluded.agreement, pair_verifications.agreement),
    registered = COALESCE(excluded.registered, pair_verifications.registered);
