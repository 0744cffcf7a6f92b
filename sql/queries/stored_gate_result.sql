-- The newest stored outcome of a gate for one version of its input (content-addressed reuse: the
-- same input under the same code gives the same outcome).
SELECT gate, passed, value, threshold, blocking, version, message, evaluated_at
FROM gate_results
WHERE gate = $gate AND version = $version
ORDER BY evaluated_at DESC
LIMIT 1;
