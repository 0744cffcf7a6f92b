-- Which of the candidate paths are already in the manifest, and under which sample_id.
SELECT m.path, m.sample_id
FROM raw_manifest m JOIN _candidate_paths c ON c.path = m.path;
