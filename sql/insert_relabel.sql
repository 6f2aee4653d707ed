-- insert_relabel: record where relabeled rewards came from (model, feature spec, gamma, time)
INSERT INTO relabels
VALUES (nextval('relabel_seq'), $source_dataset, $source_fingerprint, $destination, $destination_kind,
        $ingest_id, $model_path, $model_fingerprint, $feature_spec, $gamma, $pessimism,
        $rescale, $rows, $rows_predicted, timezone('UTC', now()))
RETURNING relabel_id
