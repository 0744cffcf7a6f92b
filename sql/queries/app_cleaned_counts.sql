-- Actions of the latest cleaned split.
SELECT action, count(*) AS n FROM cleaned_split GROUP BY action ORDER BY action;
