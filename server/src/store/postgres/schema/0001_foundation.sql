-- The catalogue, documents, keys, broker logins, users, sessions, settings, media and
-- renditions (everything but the proof-of-play ledger and planned counts, which later
-- migrations add). Each row keeps the value as the redb store does (the serde JSON of its
-- type, exact to the nanosecond); the other columns are keys and lookups.

CREATE TABLE catalogue_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    -- The last revision that changed the catalogue (events do not move it).
    head BIGINT NOT NULL CHECK (head >= 0),
    -- The last entry of the change log, events included.
    last BIGINT NOT NULL CHECK (last >= head)
);
INSERT INTO catalogue_head (only_row, head, last) VALUES (TRUE, 0, 0);

CREATE TABLE entities (
    kind TEXT NOT NULL CHECK (kind IN ('venue', 'screen', 'creative', 'campaign', 'emergency')),
    id TEXT COLLATE "C" NOT NULL,
    body JSONB NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE revisions (
    number BIGINT PRIMARY KEY CHECK (number > 0),
    at TIMESTAMPTZ NOT NULL,
    author TEXT NOT NULL,
    event TEXT,
    body JSONB NOT NULL
);

CREATE TABLE published (
    screen_id TEXT COLLATE "C" PRIMARY KEY,
    body JSONB NOT NULL
);

CREATE TABLE documents (
    screen_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 0),
    in_force_from TIMESTAMPTZ NOT NULL,
    body JSONB NOT NULL,
    PRIMARY KEY (screen_id, version)
);

CREATE TABLE screen_keys (
    screen_id TEXT COLLATE "C" PRIMARY KEY,
    -- The list of keys, oldest first (the last is current).
    keys JSONB NOT NULL
);

CREATE TABLE broker_logins (
    screen_id TEXT COLLATE "C" PRIMARY KEY,
    hash TEXT NOT NULL
);

CREATE TABLE users (
    name TEXT COLLATE "C" PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    body JSONB NOT NULL
);

CREATE TABLE sessions (
    id_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen);

CREATE TABLE meta (
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

-- A media file is its row in `media` and its chunks, written in one transaction.
CREATE TABLE media (
    sha256 TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL CHECK (bytes >= 0),
    chunk_size INTEGER NOT NULL CHECK (chunk_size > 0)
);
CREATE TABLE media_chunks (
    sha256 TEXT NOT NULL REFERENCES media (sha256),
    n INTEGER NOT NULL CHECK (n >= 0),
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, n)
);

CREATE TABLE renditions (
    key TEXT COLLATE "C" PRIMARY KEY,
    source TEXT COLLATE "C" NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX renditions_by_source ON renditions (source, key);
