-- Planned counts kept with the schedule documents (store::planned): a part says which plan
-- counts one screen's plays over [from_at, to_at); a plan is the counts themselves, shared
-- by every part that plans identically. The part's value is the serde JSON of its type
-- (exact to the nanosecond; the columns, to the microsecond, find it); a plan's counts are
-- kept as the exact bytes its id (the start of their SHA-256) was computed from.

CREATE TABLE planned_parts (
    screen_id TEXT COLLATE "C" NOT NULL,
    from_at TIMESTAMPTZ NOT NULL,
    to_at TIMESTAMPTZ NOT NULL,
    body JSONB NOT NULL,
    PRIMARY KEY (screen_id, from_at)
);
CREATE INDEX planned_parts_by_end ON planned_parts (to_at);

CREATE TABLE planned_plans (
    -- The plan id's 64 bits as a signed BIGINT.
    id BIGINT PRIMARY KEY,
    counts BYTEA NOT NULL
);
