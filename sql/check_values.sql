-- check_values: missing and non-finite values per column, reward range and sparsity
SELECT
    count(*) AS transitions,
    count(*) FILTER (WHERE reward IS NULL) AS reward_null,
    count(*) FILTER (WHERE isnan(reward)) AS reward_nan,
    count(*) FILTER (WHERE isinf(reward)) AS reward_inf,
    min(reward) FILTER (WHERE isfinite(reward)) AS reward_min,
    max(reward) FILTER (WHERE isfinite(reward)) AS reward_max,
    avg(reward) FILTER (WHERE isfinite(reward)) AS reward_mean,
    stddev_pop(reward) FILTER (WHERE isfinite(reward)) AS reward_std,
    avg(CASE WHEN reward = 0 THEN 1.0 ELSE 0.0 END) FILTER (WHERE reward IS NOT NULL)
        AS reward_zero_fraction,
    count(DISTINCT reward) AS reward_distinct,
    coalesce(sum(len(list_filter(obs, lambda x: isnan(x)))), 0)::BIGINT AS obs_nan,
    coalesce(sum(len(list_filter(obs, lambda x: isinf(x)))), 0)::BIGINT AS obs_inf,
    coalesce(sum(len(list_filter(action, lambda x: isnan(x)))), 0)::BIGINT AS action_nan,
    coalesce(sum(len(list_filter(action, lambda x: isinf(x)))), 0)::BIGINT AS action_inf,
    count(*) FILTER (WHERE next_obs IS NULL) AS next_obs_null,
    coalesce(sum(len(list_filter(next_obs, lambda x: isnan(x)))), 0)::BIGINT AS next_obs_nan,
    coalesce(sum(len(list_filter(next_obs, lambda x: isinf(x)))), 0)::BIGINT AS next_obs_inf
FROM transitions
WHERE dataset = $dataset
