-- export_partitions: one dataset as Parquet partitioned by episode bucket (episodes stay whole)
COPY (
    SELECT episode_id, step, obs, action, reward, next_obs, terminated, truncated,
           hash(episode_id) % $buckets AS bucket
    FROM transitions
    WHERE dataset = $dataset
    ORDER BY episode_id, step
) TO $folder (FORMAT parquet, PARTITION_BY (bucket), OVERWRITE_OR_IGNORE)
