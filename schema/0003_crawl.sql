-- Snowball crawls (kb crawl) and their frontiers, kept in the KB so that an interrupted crawl
-- resumes where it stopped and a finished one is not run again.

CREATE TABLE crawls (
    id          INTEGER PRIMARY KEY,
    seed        TEXT NOT NULL,                    -- the seed DOI
    direction   TEXT NOT NULL CHECK (direction IN ('refs', 'cited-by', 'both')),
    max_depth   INTEGER NOT NULL CHECK (max_depth >= 0),
    max_works   INTEGER NOT NULL DEFAULT 0,       -- works to store at most; 0 = no limit
    topic       TEXT NOT NULL DEFAULT '',         -- topic filter ('|' between alternatives)
    status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    started_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (seed, direction, max_depth, max_works, topic)
);

-- One row per work a crawl reached. Rows are handled breadth first (depth, then seq).
CREATE TABLE crawl_frontier (
    crawl_id INTEGER NOT NULL REFERENCES crawls(id) ON DELETE CASCADE,
    work_id  INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    depth    INTEGER NOT NULL,
    seq      INTEGER NOT NULL,                    -- order of discovery
    state    TEXT NOT NULL DEFAULT 'queued'
             CHECK (state IN ('queued', 'stored', 'off-topic', 'missing', 'over-limit')),
    PRIMARY KEY (crawl_id, work_id)
) WITHOUT ROWID;
CREATE INDEX crawl_frontier_queue ON crawl_frontier(crawl_id, state, depth, seq);
