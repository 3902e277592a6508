-- Version 5: one order of checkpoints for every query that sorts or picks them: base first, then the training
-- steps in numeric order, final last (compared as text, "base" came after step "100", and step "20" after it).
CREATE OR REPLACE MACRO checkpoint_rank(checkpoint) AS
    CASE checkpoint WHEN 'base' THEN -1 WHEN 'final' THEN 9223372036854775807
         ELSE coalesce(TRY_CAST(checkpoint AS BIGINT), 9223372036854775806) END;
CREATE OR REPLACE VIEW latest_scores AS
    SELECT s.run_id, r.name, s.checkpoint, s.benchmark, s.hint_mode, s.oracle_assisted, s.value AS accuracy
    FROM eval_scores s JOIN runs r USING (run_id)
    WHERE s.metric = 'accuracy'
      AND s.checkpoint = (SELECT max_by(c.checkpoint, checkpoint_rank(c.checkpoint)) FROM eval_scores c
                          WHERE c.run_id = s.run_id AND c.benchmark = s.benchmark AND c.hint_mode = s.hint_mode);
