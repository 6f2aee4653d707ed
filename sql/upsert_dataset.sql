-- upsert_dataset: record a dataset's dimensions, or touch its update time
INSERT INTO datasets (dataset, obs_dim, action_dim, action_discrete, created_at, updated_at)
VALUES ($dataset, $obs_dim, $action_dim, $action_discrete, timezone('UTC', now()), timezone('UTC', now()))
ON CONFLICT (dataset) DO UPDATE SET updated_at = excluded.updated_at
