SELECT count(*) AS n FROM rejected_samples;
