-- stream_episode_ids: the text episode ids of the landing rows, numbered in sorted order as prepare's sorted frame meets them (insert_episode_keys reads it as staged_ids)
CREATE OR REPLACE TEMP TABLE staged_ids AS
SELECT episode_id, row_number() OVER (ORDER BY episode_id) AS first_row
FROM (SELECT DISTINCT episode_id FROM stream_judged WHERE reason IS NULL)
