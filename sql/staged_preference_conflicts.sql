-- staged_preference_conflicts: staged judgements whose key is stored with another label or margin
SELECT s.source, s.source_row, s.episode_a, s.start_a, s.stop_a, s.episode_b, s.start_b,
       s.stop_b, s.annotator,
       to_json({'label': s.label, 'margin': s.margin, 'annotator': s.annotator}) AS record,
       concat_ws(', ',
           CASE WHEN s.label IS DISTINCT FROM p.label THEN 'label' END,
           CASE WHEN s.margin IS DISTINCT FROM p.margin THEN 'margin' END
       ) AS differs
FROM staged_preferences AS s
JOIN preferences AS p
  ON p.dataset = $dataset
 AND p.episode_a = s.episode_a AND p.start_a = s.start_a AND p.stop_a = s.stop_a
 AND p.episode_b = s.episode_b AND p.start_b = s.start_b AND p.stop_b = s.stop_b
 AND p.annotator = s.annotator
WHERE s.label IS DISTINCT FROM p.label OR s.margin IS DISTINCT FROM p.margin
ORDER BY s.source, s.source_row
