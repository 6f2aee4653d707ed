-- copy_episode_keys: give a relabeled copy of a dataset the source's text episode ids
INSERT INTO episode_keys
SELECT $target, episode_key, episode_id FROM episode_keys WHERE dataset = $source
