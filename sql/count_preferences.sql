-- count_preferences: number of judgements stored for one dataset
SELECT count(*) FROM preferences WHERE dataset = $dataset
