-- Keep one edge set per view: drop this view's older graphs' edges (their knn_graphs rows stay).
DELETE FROM knn_edges WHERE graph_version = $graph_version
    OR graph_version IN (SELECT graph_version FROM knn_graphs WHERE coalesce(view, 'ssl') = $view);
INSERT INTO knn_edges SELECT $graph_version, sample_id, neighbor_id, rank, distance FROM _new_edges;
