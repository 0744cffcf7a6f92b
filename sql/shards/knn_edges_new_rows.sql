-- One graph version's edges, as replace_knn_edges writes them.
SELECT CAST($graph_version AS VARCHAR) AS graph_version, sample_id, neighbor_id, rank, distance FROM _new_rows
