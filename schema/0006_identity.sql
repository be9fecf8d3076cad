-- Identity as evidence: conflicting identifier claims are kept and shown, every merge is
-- logged and reversible, and curation caveats are kept apart from the user's own note.
-- Applied by kb.store.migrate as migration 6.

-- Evidence that disagrees: a record or reference claims an identifier that a different work
-- already carries (one DOI on two PMIDs, a reference pairing one paper's DOI with another's
-- PMID). Both works are kept; nothing is merged until `kb merge` says so.
CREATE TABLE identity_conflicts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,              -- doi | pmid | pmcid | openalex_id
    value       TEXT NOT NULL,              -- the identifier claimed twice
    work_id     INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE, -- the work that carries it
    other_id    INTEGER REFERENCES works(id) ON DELETE CASCADE,  -- the claimant's work (NULL: an unresolved reference)
    claimed_by  TEXT NOT NULL,              -- the claiming record: pmid:420123, reference 3 of work 12, …
    source      TEXT NOT NULL,              -- pubmed, crossref, opencitations, import, …
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    resolution  TEXT                        -- merged | distinct
);
CREATE UNIQUE INDEX identity_conflicts_claim
    ON identity_conflicts(kind, value, work_id, coalesce(other_id, 0), claimed_by);
CREATE INDEX identity_conflicts_other ON identity_conflicts(other_id);

-- Every merge of two works (import, `kb resolve`, `kb merge`), with what `kb unmerge` needs
-- to undo it: the absorbed work's row and every row that pointed at it, and the kept work
-- before and after.
CREATE TABLE merges (
    id          INTEGER PRIMARY KEY,
    kept_id     INTEGER NOT NULL,           -- the work that remains
    absorbed_id INTEGER NOT NULL,           -- the work folded into it (its id comes back on unmerge)
    absorbed    TEXT NOT NULL,              -- JSON: the absorbed work's row and related rows
    kept_before TEXT NOT NULL,              -- JSON: the kept work's row and related rows before
    kept_after  TEXT NOT NULL,              -- JSON: the same right after the merge
    reason      TEXT NOT NULL,              -- same doi | same pmid | duplicate (title, year, author) | by hand
    source      TEXT NOT NULL,              -- who merged: pubmed, crossref, resolve, user, …
    merged_at   TEXT NOT NULL,
    undone_at   TEXT
);
CREATE INDEX merges_kept ON merges(kept_id);

-- works.note is the user's own note; curation caveats ("Title NOT seen…") move to their own field.
ALTER TABLE works ADD COLUMN curation_note TEXT;
UPDATE works SET curation_note = note, note = NULL,
                 provenance = json_set(json_remove(provenance, '$.note'), '$.curation_note', 'corpus')
WHERE note IS NOT NULL AND json_extract(provenance, '$.note') = 'corpus';

-- Open conflicts with both works labelled, for `kb serve`.
CREATE VIEW open_identity_conflicts AS
SELECT c.id, c.kind, c.value, c.work_id, w.title AS work_title, w.doi AS work_doi,
       w.pmid AS work_pmid, c.other_id, o.title AS other_title, o.doi AS other_doi,
       o.pmid AS other_pmid, c.claimed_by, c.source, c.created_at
FROM identity_conflicts c
JOIN works w ON w.id = c.work_id
LEFT JOIN works o ON o.id = c.other_id
WHERE c.resolved_at IS NULL;
