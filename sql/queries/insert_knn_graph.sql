INSERT INTO knn_graphs (graph_version, model_version, n_nodes, k, index_kind, recall_at_k,
    params_json, seconds, created_at, view)
VALUES ($graph_version, $model_version, $n_nodes, $k, $index_kind, $recall_at_k, $params_json,
    $seconds, now(), $view)
ON CONFLICT (graph_version) DO UPDATE SET created_at = now();
