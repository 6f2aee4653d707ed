-- staged_preference_segments: staged segments whose steps are not all stored in the dataset
WITH segments AS (
    SELECT source, source_row, 'A' AS side, episode_a AS episode_id, start_a AS start, stop_a AS stop
    FROM staged_preferences
    UNION ALL
    SELECT source, source_row, 'B', episode_b, start_b, stop_b
    FROM staged_preferences
),
found AS (
    SELECT s.source, s.source_row, s.side, s.episode_id, s.start, s.stop, count(t.step) AS steps
    FROM segments AS s
    LEFT JOIN transitions AS t
      ON t.dataset = $dataset AND t.episode_id = s.episode_id
     AND t.step >= s.start AND t.step < s.stop
    GROUP BY ALL
)
SELECT source, source_row, side, episode_id, start, stop, steps
FROM found
WHERE steps <> stop - start
ORDER BY source, source_row, side
