-- insert_relabel: record where relabeled rewards came from (model, feature spec, gamma, time)
INSERT INTO relabels
VALUES (nextval('relabel_seq'), $source_dataset, $source_fingerprint, $target, $target_kind,
        $ingest_id, $model_path, $model_fingerprint, $feature_spec, $gamma, $pessimism,
        $rescale, $rows, $rows_predicted, now()::TIMESTAMP)
RETURNING relabel_id
