-- Every file a stored label-model fit reads (relative to $QUALITY_HOME).
SELECT rows_path AS path FROM label_model_fits
UNION
SELECT models_path AS path FROM label_model_fits;
