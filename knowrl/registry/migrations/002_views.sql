-- Version 2: views for the common questions.
CREATE OR REPLACE VIEW latest_scores AS
    SELECT s.run_id, r.name, s.checkpoint, s.benchmark, s.hint_mode, s.oracle_assisted, s.value AS accuracy
    FROM eval_scores s JOIN runs r USING (run_id)
    WHERE s.metric = 'accuracy'
      AND s.checkpoint = (SELECT max_by(c.checkpoint, c.job_id) FROM eval_scores c
                          WHERE c.run_id = s.run_id AND c.benchmark = s.benchmark AND c.hint_mode = s.hint_mode);
CREATE OR REPLACE VIEW training_curves AS
    SELECT run_id, job_id, step, name, value FROM metrics WHERE job_id LIKE 'train-%' ORDER BY run_id, name, step;
CREATE OR REPLACE VIEW reward_sparsity AS
    WITH per_problem AS (
        SELECT run_id, checkpoint, benchmark, hint_mode, problem_id,
               sum(correct::INTEGER) AS correct, count(*) AS samples
        FROM eval_samples GROUP BY ALL)
    SELECT run_id, checkpoint, benchmark, hint_mode, count(*) AS problems,
           avg((correct = 0)::INTEGER) AS zero_correct, avg((correct = samples)::INTEGER) AS all_correct
    FROM per_problem GROUP BY ALL;
