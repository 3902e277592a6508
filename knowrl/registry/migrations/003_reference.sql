-- Version 3: published reference results, kept apart from measured runs.
CREATE TABLE IF NOT EXISTS reference_results (
    source        VARCHAR NOT NULL,
    table_name    VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    hint_mode     VARCHAR NOT NULL,
    benchmark     VARCHAR NOT NULL,
    value         DOUBLE NOT NULL,
    published_avg DOUBLE,
    mean_kps      DOUBLE,
    PRIMARY KEY (source, table_name, model, hint_mode, benchmark)
);
