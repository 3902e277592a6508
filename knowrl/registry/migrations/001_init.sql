-- knowrl registry schema, version 1: runs, jobs, metrics, eval samples and scores, KP selections, sweeps.
CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR PRIMARY KEY,
    spec_hash     VARCHAR NOT NULL,
    sweep_id      VARCHAR,
    name          VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,
    spec          JSON,
    git_sha       VARCHAR,
    git_dirty     BOOLEAN,
    versions      JSON,
    host          VARCHAR,
    created_at    TIMESTAMP,
    started_at    TIMESTAMP,
    finished_at   TIMESTAMP,
    is_reference  BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id        VARCHAR NOT NULL,
    job_id        VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    phase         INTEGER,
    backend       VARCHAR,
    submission_id VARCHAR,
    status        VARCHAR NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    started_at    TIMESTAMP,
    finished_at   TIMESTAMP,
    error         VARCHAR,
    PRIMARY KEY (run_id, job_id)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id   VARCHAR NOT NULL,
    job_id   VARCHAR NOT NULL,
    step     BIGINT,
    name     VARCHAR NOT NULL,
    value    DOUBLE,
    context  JSON
);
CREATE TABLE IF NOT EXISTS eval_samples (
    run_id           VARCHAR NOT NULL,
    job_id           VARCHAR NOT NULL,
    checkpoint       VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    problem_id       VARCHAR NOT NULL,
    hint_mode        VARCHAR NOT NULL,
    sample_index     INTEGER NOT NULL,
    correct          BOOLEAN NOT NULL,
    answer           VARCHAR,
    length           INTEGER,
    finish_reason    VARCHAR,
    kps              INTEGER
);
CREATE TABLE IF NOT EXISTS eval_scores (
    run_id          VARCHAR NOT NULL,
    job_id          VARCHAR NOT NULL,
    checkpoint      VARCHAR NOT NULL,
    benchmark       VARCHAR NOT NULL,
    hint_mode       VARCHAR NOT NULL,
    oracle_assisted BOOLEAN NOT NULL DEFAULT FALSE,
    metric          VARCHAR NOT NULL,
    value           DOUBLE
);
CREATE TABLE IF NOT EXISTS kp_selections (
    run_id      VARCHAR NOT NULL,
    job_id      VARCHAR NOT NULL,
    problem_id  VARCHAR NOT NULL,
    strategy    VARCHAR NOT NULL,
    selected    INTEGER[],
    est_chosen  DOUBLE,
    est_empty   DOUBLE,
    est_full    DOUBLE,
    rollouts    INTEGER
);
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id    VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    definition  JSON NOT NULL,
    created_at  TIMESTAMP
);
