-- stream_infinities: per vector column, the staged rows holding ±inf and the first of them by key
SELECT col, count(*) AS n, first(source ORDER BY episode_id, step) AS source,
       first(source_row ORDER BY episode_id, step) AS source_row
FROM (
    SELECT unnest(['obs', 'action', 'next_obs']) AS col,
           unnest([list_bool_or(list_transform(obs, lambda x: isinf(x))),
                   list_bool_or(list_transform(action, lambda x: isinf(x))),
                   list_bool_or(list_transform(next_obs, lambda x: isinf(x)))]) AS inf,
           episode_id, step, source, source_row
    FROM staged
)
WHERE inf
GROUP BY col
