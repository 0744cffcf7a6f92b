SELECT path_a, path_b, split_a, split_b, score, rank, is_issue, group_id, distance, evidence
FROM duplicate_pairs ORDER BY rank;
