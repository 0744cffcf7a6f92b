INSERT INTO pair_verifications (verifier_version, sample_a, sample_b, mirror, aligned, agreement)
SELECT $verifier_version, sample_a, sample_b, mirror, aligned, agreement FROM _new_pair_verifications
ON CONFLICT DO NOTHING;
