INSERT INTO knn_graphs (graph_version, model_version, n_nodes, k, index_kind, recall_at_k,
    params_json, seconds, created_at, view, manifest_version, edges_kept)
VALUES ($graph_version, $model_version, $n_nodes, $k, $index_kind, $recall_at_k, $params_json,
    $seconds, now(), $view, $manifest_version, true)
ON CONFLICT (graph_version) DO UPDATE SET created_at = now(), params_json = excluded.params_json,
    recall_at_k = excluded.recall_at_k, seconds = excluded.seconds, manifest_version = excluded.manifest_version,
    edges_kept = true;
