-- Every file a stored pixel-classifier fit reads (relative to $QUALITY_HOME).
SELECT rows_path AS path FROM pixel_classifier_fits
UNION
SELECT folds_path AS path FROM pixel_classifier_fits;
