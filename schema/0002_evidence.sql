-- kb evidence schema: trials, their facts with provenance, arms, reports, typed lineage between
-- works, and retraction flags. Applied by kb.store.migrate as migration 2.
-- Writes go through kb.store.evidence; kb.evidence computes what the rules infer.

-- One row per clinical study (a trial, a registry entry, or a pooled study). The value columns
-- hold the best fact per field (curated > registry > rule) and are refreshed from trial_facts.
CREATE TABLE trials (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,   -- first registry id, doi:<doi>, url:<url> or work:<id>
    label           TEXT,                   -- "Amanat 2021", or the registry id
    title           TEXT,
    registry_ids    TEXT,                   -- "; "-joined, NCT first
    design          TEXT,
    phase           TEXT,
    status          TEXT,
    enrollment      INTEGER,
    n               INTEGER,                -- participants: randomised, else treated, else enrolled
    cell_type       TEXT,
    origin          TEXT,                   -- autologous | allogeneic
    route           TEXT,
    dose            TEXT,
    age_range       TEXT,
    blinding        TEXT,
    control         TEXT,
    outcomes        TEXT,                   -- "; "-joined
    follow_up_months TEXT,                  -- "; "-joined months
    country         TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Every value any source gave for a trial field, with where it came from.
CREATE TABLE trial_facts (
    trial_id   INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    field      TEXT NOT NULL,               -- cell_type, route, n_randomised, outcomes, ...
    provenance TEXT NOT NULL CHECK (provenance IN ('curated', 'registry', 'rule')),
    value      TEXT NOT NULL,               -- display text (lists joined with "; ")
    data       TEXT NOT NULL,               -- the value as JSON (numbers, lists)
    source_url TEXT,                        -- the page or record the value was read from
    sources    TEXT NOT NULL DEFAULT '[]',  -- JSON array of every page behind the value
    work_id    INTEGER REFERENCES works(id) ON DELETE SET NULL,  -- the report a rule read
    updated_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, field, provenance)
);
CREATE INDEX trial_facts_field ON trial_facts(field, value);

CREATE TABLE trial_registry_ids (
    registry_id TEXT PRIMARY KEY,           -- NCT01234567, IRCT2015..., ChiCTR-..., ACTRN..., ...
    trial_id    INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    registry    TEXT NOT NULL,              -- ClinicalTrials.gov, IRCT, ChiCTR, ISRCTN, CRiS, CTRI, ANZCTR
    provenance  TEXT NOT NULL CHECK (provenance IN ('curated', 'registry', 'rule')),
    source_url  TEXT
);
CREATE INDEX trial_registry_ids_trial ON trial_registry_ids(trial_id);

-- Arms as a source gives them; the evidence table shows the best provenance's set.
CREATE TABLE trial_arms (
    trial_id    INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    provenance  TEXT NOT NULL CHECK (provenance IN ('curated', 'registry', 'rule')),
    position    INTEGER NOT NULL,           -- 1-based
    name        TEXT NOT NULL,
    n           INTEGER,
    arm_type    TEXT,                       -- EXPERIMENTAL, SHAM_COMPARATOR, ... (registry)
    description TEXT,
    source_url  TEXT,
    PRIMARY KEY (trial_id, provenance, position)
);

-- Which works report which trial: results, protocol, follow-up, secondary analysis, pooled analysis.
CREATE TABLE trial_reports (
    trial_id   INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    work_id    INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('results', 'protocol', 'follow-up', 'secondary',
                                             'pooled-analysis', 'registry-record')),
    provenance TEXT NOT NULL CHECK (provenance IN ('curated', 'registry', 'rule')),
    reason     TEXT,
    source_url TEXT,
    PRIMARY KEY (trial_id, work_id)
);
CREATE INDEX trial_reports_work ON trial_reports(work_id);

-- Typed lineage between works, beside plain `cites` (citations): from_work pools / follows up /
-- reports the same trial as to_work. kb graph reads this table (or the lineage_edges view).
CREATE TABLE lineage (
    id           INTEGER PRIMARY KEY,
    from_work_id INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    to_work_id   INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    relation     TEXT NOT NULL CHECK (relation IN ('pools', 'follow_up_of', 'same_trial')),
    provenance   TEXT NOT NULL CHECK (provenance IN ('curated', 'registry', 'rule')),
    reason       TEXT NOT NULL,
    source       TEXT,                      -- the page it was read from, or the rule's name
    created_at   TEXT NOT NULL,
    UNIQUE (from_work_id, to_work_id, relation),
    CHECK (from_work_id != to_work_id)
);
CREATE INDEX lineage_to ON lineage(to_work_id);

-- Retraction and correction marks per work, recomputed by kb.evidence.retractions.
CREATE TABLE work_flags (
    work_id       INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    flag          TEXT NOT NULL CHECK (flag IN ('retracted', 'corrected',
                                               'expression-of-concern', 'depends-on-retracted')),
    reason        TEXT NOT NULL,
    other_work_id INTEGER REFERENCES works(id) ON DELETE CASCADE,
    source        TEXT,
    PRIMARY KEY (work_id, flag, reason)
);

-- A short label per work: first author + year, else a trimmed title.
CREATE VIEW work_labels AS
SELECT w.id AS work_id,
       coalesce((SELECT coalesce(a.family, a.name) FROM work_authors wa JOIN authors a
                 ON a.id = wa.author_id WHERE wa.work_id = w.id ORDER BY wa.position LIMIT 1)
                || coalesce(' ' || w.year, ''),
                substr(coalesce(w.title, w.doi, w.url, 'work ' || w.id), 1, 60)) AS label
FROM works w;

-- One visible mark per work for search, graph and evidence output.
CREATE VIEW work_marks AS
SELECT work_id,
       CASE WHEN max(flag = 'retracted') THEN 'RETRACTED'
            WHEN max(flag = 'depends-on-retracted') THEN 'DEPENDS ON RETRACTED'
            WHEN max(flag = 'expression-of-concern') THEN 'EXPRESSION OF CONCERN'
            ELSE 'CORRECTED' END AS mark,
       group_concat(reason, '; ') AS reasons
FROM work_flags GROUP BY work_id;

-- Lineage edges with both ends described: what kb graph and Datasette show.
CREATE VIEW lineage_edges AS
SELECT l.id, l.relation, l.from_work_id, fl.label AS from_label, f.doi AS from_doi,
       l.to_work_id, tl.label AS to_label, t.doi AS to_doi, l.provenance, l.reason, l.source
FROM lineage l
JOIN works f ON f.id = l.from_work_id JOIN work_labels fl ON fl.work_id = f.id
JOIN works t ON t.id = l.to_work_id JOIN work_labels tl ON tl.work_id = t.id;

-- Every work reporting a trial, including pooled analyses that pool one of its reports.
CREATE VIEW trial_reports_all AS
SELECT trial_id, work_id, role, provenance, reason FROM trial_reports
UNION
SELECT r.trial_id, l.from_work_id, 'pooled-analysis', l.provenance, l.reason
FROM lineage l JOIN trial_reports r ON r.work_id = l.to_work_id
WHERE l.relation = 'pools'
  AND NOT EXISTS (SELECT 1 FROM trial_reports x WHERE x.trial_id = r.trial_id
                  AND x.work_id = l.from_work_id);

-- Facts with their provenance, one row per trial/field/source: the audit trail.
CREATE VIEW trial_fact_sources AS
SELECT t.id AS trial_id, t.label, f.field, f.value, f.provenance, f.source_url, f.work_id
FROM trial_facts f JOIN trials t ON t.id = f.trial_id;

-- The evidence table: one row per trial (what `kb evidence` prints).
CREATE VIEW evidence AS
SELECT t.id AS trial_id, t.label, t.design, t.cell_type, t.origin, t.route, t.dose, t.n,
       t.age_range, t.blinding, t.control, t.outcomes, t.follow_up_months, t.registry_ids,
       t.phase, t.status, t.enrollment, t.country,
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
