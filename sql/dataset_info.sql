-- dataset_info: dimensions of one dataset, if it exists
SELECT obs_dim, action_dim, action_discrete FROM datasets WHERE dataset = $dataset
