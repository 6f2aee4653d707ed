-- episode_keys: the text episode ids of one dataset and their integer keys
SELECT episode_key, episode_id FROM episode_keys WHERE dataset = $dataset ORDER BY episode_key
