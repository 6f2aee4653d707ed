-- upsert_dataset: record a dataset's dimensions, or touch its update time
INSERT INTO datasets (name, obs_dim, action_dim, action_discrete, created_at, updated_at)
VALUES ($dataset, $obs_dim, $action_dim, $action_discrete, now()::TIMESTAMP, now()::TIMESTAMP)
ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at
