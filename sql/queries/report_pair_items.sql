-- The top $limit candidate duplicate pairs of the latest score run: flagged first, then by rank.
SELECT d.sample_a, d.path_a, d.split_a, d.label_a, a.data_root AS data_root_a,
       d.sample_b, d.path_b, d.split_b, d.label_b, b.data_root AS data_root_b,
       d.score, d.rank, d.is_issue, d.group_id, d.distance, d.evidence
FROM duplicate_pairs d
JOIN manifest a ON a.sample_id = d.sample_a
JOIN manifest b ON b.sample_id = d.sample_b
ORDER BY d.is_issue DESC, d.rank, d.sample_a, d.sample_b
LIMIT $limit;
