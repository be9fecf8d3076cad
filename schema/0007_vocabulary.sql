-- kb's controlled vocabulary of trial facts, and each trial's normalised facts beside the text
-- as stated. Applied by kb.store.migrate as migration 7.
-- kb.evidence.vocabulary owns the vocabulary (its data file kb/evidence/vocabulary.csv);
-- kb build copies the file into the synonyms table below, for browsing.

-- One row per synonym: a text as stated (term) and the value it means (normalised); pattern is
-- the regular expression that finds it in running text (empty: the term, as a whole phrase).
CREATE TABLE synonyms (
    kind       TEXT NOT NULL CHECK (kind IN ('product', 'donor', 'route', 'control', 'blinding')),
    term       TEXT NOT NULL,
    normalised TEXT NOT NULL,
    pattern    TEXT,
    position   INTEGER NOT NULL,             -- the row's place in the file (its priority)
    PRIMARY KEY (kind, term)
);
CREATE INDEX synonyms_normalised ON synonyms(kind, normalised);

-- trials: cell_type and origin stay the text as stated; route, control and blinding now hold the
-- normalised value (lists "; "-joined), the text as stated moves to the *_as_stated columns.
-- kb.store.evidence.refresh_trial fills them; a KB made before this version shows the stated
-- text as the normalised value until its trials are refreshed (`kb evidence --annotate`).
ALTER TABLE trials ADD COLUMN cell_product TEXT;        -- UCB-MNC, UC-MSC, BM-MNC, ... "; "-joined
ALTER TABLE trials ADD COLUMN donor TEXT;               -- autologous | allogeneic | sibling
ALTER TABLE trials ADD COLUMN route_as_stated TEXT;
ALTER TABLE trials ADD COLUMN control_as_stated TEXT;
ALTER TABLE trials ADD COLUMN blinding_as_stated TEXT;
UPDATE trials SET route_as_stated = route, control_as_stated = control,
                  blinding_as_stated = blinding, cell_product = cell_type, donor = origin;
CREATE INDEX trials_cell_product ON trials(cell_product);
CREATE INDEX trials_route ON trials(route);

DROP VIEW evidence;
-- The evidence table: one row per trial (what `kb evidence` prints); each normalised fact beside
-- its text as stated (cell_type and origin: the product and donor as stated).
CREATE VIEW evidence AS
SELECT t.id AS trial_id, t.label, t.design, t.cell_product, t.cell_type, t.donor, t.origin,
       t.route, t.route_as_stated, t.dose, t.n, t.age_range, t.blinding, t.blinding_as_stated,
       t.control, t.control_as_stated, t.outcomes, t.follow_up_months, t.registry_ids, t.phase,
       t.status, t.enrollment, t.country,
       (SELECT group_concat(item, ' | ') FROM (
            SELECT wl.label || ' [' || r.role || ']' || coalesce(' ' || w.doi, '')
                   || coalesce(' {' || m.mark || '}', '') AS item
            FROM trial_reports_all r JOIN works w ON w.id = r.work_id
            JOIN work_labels wl ON wl.work_id = w.id
            LEFT JOIN work_marks m ON m.work_id = w.id
            WHERE r.trial_id = t.id ORDER BY w.year, w.id)) AS reports,
       EXISTS (SELECT 1 FROM trial_reports_all r JOIN work_flags f ON f.work_id = r.work_id
               WHERE r.trial_id = t.id AND f.flag = 'retracted') AS has_retracted_report
FROM trials t;
