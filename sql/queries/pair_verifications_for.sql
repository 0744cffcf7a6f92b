-- Stored pixel verdicts of one verifier version among the current manifest's samples.
SELECT v.sample_a, v.sample_b, v.mirror, v.aligned, v.agreement, v.registered,
       v.crop_distance, v.whole_distance, v.crop_difference, v.grid_difference, v.grid_relative
FROM pair_verifications v
WHERE v.verifier_version = $verifier_version
  AND v.sample_a IN (SELECT sample_id FROM active_manifest)
  AND v.sample_b IN (SELECT sample_id FROM active_manifest);
