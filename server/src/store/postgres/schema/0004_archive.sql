-- Ledger retention (see ledger/archive.rs): per (screen, epoch) chain, the last batch moved
-- to the archive files and the highest seq archived (the live chain continues from it;
-- records at or below that seq are held in the archive), and each archive file written
-- with the span of its plays' slot_start (microseconds since the Unix epoch), so the raw
-- export reads only the files a window needs.

CREATE TABLE pop_archived (
    screen TEXT COLLATE "C" NOT NULL,
    epoch TEXT COLLATE "C" NOT NULL,
    batch_seq BIGINT NOT NULL CHECK (batch_seq >= 0),
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0),
    PRIMARY KEY (screen, epoch)
);

CREATE TABLE pop_archive_files (
    -- The file's absolute path on the machines of the replicas that archive.
    path TEXT COLLATE "C" PRIMARY KEY,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);
