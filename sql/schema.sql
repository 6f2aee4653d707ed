-- schema: create the store's tables if they do not exist (idempotent, no parameters)
CREATE SEQUENCE IF NOT EXISTS ingest_seq START 1;

CREATE TABLE IF NOT EXISTS transitions (
    dataset     VARCHAR   NOT NULL,
    episode_id  BIGINT    NOT NULL,
    step        BIGINT    NOT NULL,
    obs         FLOAT[]   NOT NULL,
    action      FLOAT[]   NOT NULL,
    reward      DOUBLE,
    next_obs    FLOAT[],
    terminated  BOOLEAN   NOT NULL,
    truncated   BOOLEAN   NOT NULL,
    "timestamp" TIMESTAMP,
    extra       JSON,
    ingest_id   BIGINT    NOT NULL,
    PRIMARY KEY (dataset, episode_id, step)
);

CREATE TABLE IF NOT EXISTS datasets (
    name            VARCHAR PRIMARY KEY,
    obs_dim         INTEGER NOT NULL,
    action_dim      INTEGER NOT NULL,
    action_discrete BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS ingests (
    ingest_id      BIGINT PRIMARY KEY,
    dataset        VARCHAR NOT NULL,
    sources        VARCHAR[] NOT NULL,
    rows_read      BIGINT NOT NULL,
    rows_added     BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,
    rows_rejected  BIGINT NOT NULL,
    rows_conflicting BIGINT NOT NULL,
    finished_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS rejected (
    ingest_id   BIGINT NOT NULL,
    dataset     VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    source_row  BIGINT,
    reason      VARCHAR NOT NULL,
    record      JSON,
    rejected_at TIMESTAMP NOT NULL
);

CREATE SEQUENCE IF NOT EXISTS run_seq START 1;

CREATE TABLE IF NOT EXISTS runs (
    run_id           BIGINT PRIMARY KEY,
    kind             VARCHAR NOT NULL,
    dataset          VARCHAR NOT NULL,
    target           VARCHAR,
    backend          VARCHAR,
    device           VARCHAR,
    params           JSON,
    feature_spec     JSON,
    metrics          JSON,
    data_fingerprint VARCHAR,
    model_path       VARCHAR,
    trial_number     INTEGER,
    duration_s       DOUBLE,
    created_at       TIMESTAMP NOT NULL
);
