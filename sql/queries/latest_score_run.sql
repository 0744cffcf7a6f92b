SELECT * FROM latest_score_run;
