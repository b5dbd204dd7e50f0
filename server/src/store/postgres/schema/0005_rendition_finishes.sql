-- Renditions made in the background (videos), numbered as they finish (store::RenditionStore::
-- put_finished_rendition): the publisher reads the numbers above the last it saw and
-- republishes the screens that name each, whichever replica made it. A finish takes this
-- table's lock until it commits, so numbers rise in commit order and a reader that saw one
-- number has seen every lower one.

CREATE TABLE rendition_finishes (
    n BIGINT PRIMARY KEY CHECK (n > 0),
    key TEXT COLLATE "C" NOT NULL REFERENCES renditions (key)
);
