INSERT INTO score_runs (score_version, graph_version, model_version, manifest_version, config_json,
                        summary_json, created_at)
VALUES ($score_version, $graph_version, $model_version, $manifest_version, $config_json, $summary_json, now())
ON CONFLICT (score_version) DO UPDATE SET created_at = now(), summary_json = excluded.summary_json,
    rows_pruned_at = NULL;
