-- The score run the report describes (the public views all read this one).
SELECT score_version, model_version, graph_version, manifest_version, summary_json, created_at
FROM latest_score_run;
