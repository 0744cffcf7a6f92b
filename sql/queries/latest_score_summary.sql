SELECT score_version, summary_json FROM latest_score_run;
