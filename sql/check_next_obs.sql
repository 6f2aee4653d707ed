-- check_next_obs: transitions whose next_obs differs from the obs of the following step
WITH paired AS (
    SELECT episode_id, step, next_obs,
           lead(obs) OVER (PARTITION BY episode_id ORDER BY step) AS following_obs,
           lead(step) OVER (PARTITION BY episode_id ORDER BY step) AS following_step
    FROM transitions
    WHERE dataset = $dataset
)
SELECT
    count(*) FILTER (WHERE following_step = step + 1 AND next_obs IS NOT NULL) AS pairs_checked,
    count(*) FILTER (WHERE following_step = step + 1 AND next_obs IS NOT NULL
                     AND list_max(list_transform(list_zip(next_obs, following_obs),
                                                 lambda p: abs(p[1] - p[2]))) > $tolerance)
        AS next_obs_mismatch,
    list([episode_id, step] ORDER BY episode_id, step)
        FILTER (WHERE following_step = step + 1 AND next_obs IS NOT NULL
                AND list_max(list_transform(list_zip(next_obs, following_obs),
                                            lambda p: abs(p[1] - p[2]))) > $tolerance)[1:5]
        AS example_mismatches
FROM paired
