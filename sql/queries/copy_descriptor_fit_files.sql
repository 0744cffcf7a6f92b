-- Every file a stored copy-descriptor fit reads (relative to $QUALITY_HOME).
SELECT rows_path AS path FROM copy_descriptor_fits
UNION
SELECT network_path AS path FROM copy_descriptor_fits;
