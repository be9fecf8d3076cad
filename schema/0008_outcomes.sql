-- kb outcomes schema: every reported number of a trial's results, per arm (or between arms),
-- instrument, timepoint and statistic, with its provenance and page. Applied by kb.store.migrate
-- as migration 8. Writes go through kb.store.outcomes; kb.evidence.effects computes effect
-- sizes from these rows and kb.evidence.meta pools them.

CREATE TABLE outcomes (
    id                   INTEGER PRIMARY KEY,
    trial_id             INTEGER REFERENCES trials(id) ON DELETE SET NULL,  -- NULL: a pooled result
    trial_ref            TEXT NOT NULL,        -- the trial as the source names it (registry id or work id)
    work_id              INTEGER REFERENCES works(id) ON DELETE SET NULL,   -- the report it was read for
    arm                  TEXT NOT NULL,        -- as the source names it; "X vs Y" for a between-arm number
    arm_role             TEXT NOT NULL CHECK (arm_role IN ('intervention', 'control')),
    n                    INTEGER,              -- participants behind the number
    instrument           TEXT,                 -- normalised: GMFM-66, GMFM-88, GMFM (unspecified), PEDI, MAS, ...
    instrument_as_stated TEXT,
    timepoint_months     REAL,                 -- 0 = baseline, negative = before treatment, NULL = not stated
    timepoint_as_stated  TEXT,
    quantity             TEXT NOT NULL CHECK (quantity IN ('final', 'change_from_baseline',
                             'between_group_difference', 'adjusted_difference', 'smd', 'cohens_d',
                             'p_value', 'n_analysed')),
    statistic            TEXT NOT NULL CHECK (statistic IN ('mean', 'median', 'sd', 'se',
                             'ci_low', 'ci_high', 'value')),
    value                REAL NOT NULL,
    value_as_stated      TEXT,                 -- e.g. "<0.001"
    provenance           TEXT NOT NULL CHECK (provenance IN ('curated', 'registry', 'rule')),
    source_url           TEXT,                 -- the page the number was read from
    location             TEXT,                 -- where on the page: table, figure, abstract
    note                 TEXT,
    reported_in_work_id  INTEGER REFERENCES works(id) ON DELETE SET NULL,  -- a meta-analysis table printing it
    reported_in          TEXT                  -- that work's id as the source gives it
);
CREATE INDEX outcomes_trial ON outcomes(trial_id, instrument, timepoint_months);
CREATE INDEX outcomes_instrument ON outcomes(instrument, timepoint_months);
CREATE INDEX outcomes_work ON outcomes(work_id, provenance);

-- Outcome rows with their trial's label, normalised facts (schema 7) and the report's DOI.
CREATE VIEW outcome_rows AS
SELECT o.id, coalesce(t.label, wl.label, o.trial_ref) AS trial, o.trial_id, t.cell_product,
       t.route, t.donor, t.cell_type AS cell_product_as_stated, o.arm, o.arm_role, o.instrument, o.instrument_as_stated,
       o.timepoint_months, o.quantity, o.statistic, o.value, o.value_as_stated, o.n,
       o.provenance, w.doi AS report_doi, o.reported_in, o.source_url, o.location, o.note
FROM outcomes o
LEFT JOIN trials t ON t.id = o.trial_id
LEFT JOIN works w ON w.id = o.work_id
LEFT JOIN work_labels wl ON wl.work_id = o.work_id;

-- Reported between-arm effects, one row per trial / instrument / timepoint / kind of effect:
-- the estimate beside its CI, p value and n (the numbers a reader compares across trials).
CREATE VIEW effects AS
SELECT coalesce(t.label, wl.label, o.trial_ref) AS trial, o.trial_id, t.cell_product, t.route,
       t.donor, o.instrument, o.timepoint_months, o.quantity AS effect, o.arm AS comparison,
       max(CASE WHEN o.statistic IN ('mean', 'value') THEN o.value END) AS estimate,
       max(CASE WHEN o.statistic = 'ci_low' THEN o.value END) AS ci_low,
       max(CASE WHEN o.statistic = 'ci_high' THEN o.value END) AS ci_high,
       (SELECT p.value FROM outcomes p WHERE p.trial_ref = o.trial_ref AND p.quantity = 'p_value'
        AND p.instrument IS o.instrument AND p.timepoint_months IS o.timepoint_months
        AND p.arm = o.arm LIMIT 1) AS p_value,
       max(o.n) AS n, o.provenance, t.design, w.doi AS report_doi, o.source_url, o.location
FROM outcomes o
LEFT JOIN trials t ON t.id = o.trial_id
LEFT JOIN works w ON w.id = o.work_id
LEFT JOIN work_labels wl ON wl.work_id = o.work_id
WHERE o.quantity IN ('between_group_difference', 'adjusted_difference', 'smd', 'cohens_d')
GROUP BY o.trial_ref, o.instrument, o.timepoint_months, o.quantity, o.arm, o.provenance,
         o.source_url;
