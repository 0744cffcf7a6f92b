INSERT INTO gate_results (gate, passed, value, threshold, blocking, version, message, evaluated_at)
VALUES ($gate, $passed, $value, $threshold, $blocking, $version, $message, now());
