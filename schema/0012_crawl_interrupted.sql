-- A crawl that failed part-way is 'interrupted' (resumable), not 'running' for ever.
-- SQLite cannot change a CHECK in place: both crawl tables are rebuilt. The old crawls table is
-- renamed first (the frontier's foreign key follows it), so no row is lost to ON DELETE CASCADE.

ALTER TABLE crawls RENAME TO crawls_before_12;

CREATE TABLE crawls (
    id          INTEGER PRIMARY KEY,
    seed        TEXT NOT NULL,                    -- the seed DOI
    direction   TEXT NOT NULL CHECK (direction IN ('refs', 'cited-by', 'both')),
    max_depth   INTEGER NOT NULL CHECK (max_depth >= 0),
    max_works   INTEGER NOT NULL DEFAULT 0,       -- works to store at most; 0 = no limit
    topic       TEXT NOT NULL DEFAULT '',         -- topic filter ('|' between alternatives)
    status      TEXT NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'interrupted', 'done')),
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (seed, direction, max_depth, max_works, topic)
);
INSERT INTO crawls SELECT * FROM crawls_before_12;

CREATE TABLE crawl_frontier_12 (
    crawl_id INTEGER NOT NULL REFERENCES crawls(id) ON DELETE CASCADE,
    work_id  INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    depth    INTEGER NOT NULL,
    seq      INTEGER NOT NULL,                    -- order of discovery
    state    TEXT NOT NULL DEFAULT 'queued'
             CHECK (state IN ('queued', 'stored', 'off-topic', 'missing', 'over-limit')),
    PRIMARY KEY (crawl_id, work_id)
) WITHOUT ROWID;
INSERT INTO crawl_frontier_12 SELECT * FROM crawl_frontier;
DROP TABLE crawl_frontier;
ALTER TABLE crawl_frontier_12 RENAME TO crawl_frontier;
CREATE INDEX crawl_frontier_queue ON crawl_frontier(crawl_id, state, depth, seq);
DROP TABLE crawls_before_12;
