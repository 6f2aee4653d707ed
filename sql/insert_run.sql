-- insert_run: record one training run (params, metrics, data fingerprint, duration)
INSERT INTO runs
VALUES (nextval('run_seq'), $kind, $dataset, $target, $backend, $device, $params, $feature_spec,
        $metrics, $data_fingerprint, $model_path, $trial_number, $duration_s, timezone('UTC', now()))
RETURNING run_id
