-- The proof-of-play ledger (see ledger/mod.rs): signed batches as received (packed), a
-- reference per record into the batch that stored it, each (screen, epoch) chain's head,
-- gaps, the latest epoch per screen and hourly rollups. Ids sort as bytes (COLLATE "C"),
-- as in the redb ledger; hashes are the 32 raw bytes of a batch's SHA-256.

CREATE TABLE pop_batches (
    screen TEXT COLLATE "C" NOT NULL,
    epoch TEXT COLLATE "C" NOT NULL,
    batch_seq BIGINT NOT NULL CHECK (batch_seq >= 0),
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    -- The signed envelope as received, packed (store/ledger/pack.rs).
    envelope BYTEA NOT NULL,
    -- What was wrong with the chain at ingest, kept for the audit.
    anomaly TEXT,
    PRIMARY KEY (screen, epoch, batch_seq, hash)
);

CREATE TABLE pop_records (
    screen TEXT COLLATE "C" NOT NULL,
    epoch TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 0),
    -- The batch that stored it and its index in that batch's records.
    batch_seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    idx INTEGER NOT NULL CHECK (idx >= 0),
    PRIMARY KEY (screen, epoch, seq)
);

CREATE TABLE pop_heads (
    screen TEXT COLLATE "C" NOT NULL,
    epoch TEXT COLLATE "C" NOT NULL,
    batch_seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    -- No record with a higher seq is stored.
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (screen, epoch)
);

CREATE TABLE pop_gaps (
    screen TEXT COLLATE "C" NOT NULL,
    epoch TEXT COLLATE "C" NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (screen, epoch, first_seq)
);

CREATE TABLE pop_latest_epoch (
    screen TEXT COLLATE "C" PRIMARY KEY,
    epoch TEXT COLLATE "C" NOT NULL
);

-- Plays per hour (unix hour of slot_start) per key of a dimension (0 venue, 1 screen,
-- 2 campaign, 3 creative), for any venue and screen (NULL) and for each one.
CREATE TABLE pop_rollups (
    dimension SMALLINT NOT NULL CHECK (dimension BETWEEN 0 AND 3),
    venue TEXT COLLATE "C",
    screen TEXT COLLATE "C",
    key TEXT COLLATE "C" NOT NULL,
    hour BIGINT NOT NULL,
    complete BIGINT NOT NULL,
    partial BIGINT NOT NULL,
    failed BIGINT NOT NULL
);
CREATE UNIQUE INDEX pop_rollups_key ON pop_rollups (dimension, venue, screen, key, hour)
    NULLS NOT DISTINCT;
