-- The latest evaluation of every gate.
SELECT gate, passed, value, threshold, blocking, version, message, evaluated_at
FROM latest_gate_results
ORDER BY gate;
