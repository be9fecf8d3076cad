-- The multi-valued normalised trial facts (cell product, donor, route; "; "-joined text since
-- schema 7) also as JSON arrays, so Datasette facets them one value at a time
-- (schema/metadata.yaml: facets: [{array: cell_products}, ...]) instead of counting
-- "BM-MSC; BM-MNC" as one product. Applied by kb.store.migrate as migration 10.
--
-- The arrays are virtual generated columns: computed from the text columns on every read, so
-- nothing writes them and they can never disagree. json_quote escapes the text; each "; " of
-- it then separates two strings.

ALTER TABLE trials ADD COLUMN cell_products TEXT GENERATED ALWAYS AS (
    CASE WHEN cell_product <> '' THEN '[' || replace(json_quote(cell_product), '; ', '","') || ']'
    END) VIRTUAL;
ALTER TABLE trials ADD COLUMN donors TEXT GENERATED ALWAYS AS (
    CASE WHEN donor <> '' THEN '[' || replace(json_quote(donor), '; ', '","') || ']' END) VIRTUAL;
ALTER TABLE trials ADD COLUMN routes TEXT GENERATED ALWAYS AS (
    CASE WHEN route <> '' THEN '[' || replace(json_quote(route), '; ', '","') || ']' END) VIRTUAL;

-- The views that carry these facts carry the arrays too (otherwise as in schemas 7 and 8).
DROP VIEW evidence;
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
               WHERE r.trial_id = t.id AND f.flag = 'retracted') AS has_retracted_report,
       t.cell_products, t.donors, t.routes
FROM trials t;

-- outcome_rows reads the arrays in subqueries: Datasette's array facet joins json_each(column)
-- before the view, and SQLite cannot move it after the view's LEFT JOIN trials, which left the
-- facet empty.
DROP VIEW outcome_rows;
CREATE VIEW outcome_rows AS
SELECT o.id, coalesce(t.label, wl.label, o.trial_ref) AS trial, o.trial_id, t.cell_product,
       t.route, t.donor, t.cell_type AS cell_product_as_stated, o.arm, o.arm_role, o.instrument,
       o.instrument_as_stated, o.timepoint_months, o.quantity, o.statistic, o.value,
       o.value_as_stated, o.n, o.provenance, w.doi AS report_doi, o.reported_in, o.source_url,
       o.location, o.note,
       (SELECT x.cell_products FROM trials x WHERE x.id = o.trial_id) AS cell_products,
       (SELECT x.routes FROM trials x WHERE x.id = o.trial_id) AS routes,
       (SELECT x.donors FROM trials x WHERE x.id = o.trial_id) AS donors
FROM outcomes o
LEFT JOIN trials t ON t.id = o.trial_id
LEFT JOIN works w ON w.id = o.work_id
LEFT JOIN work_labels wl ON wl.work_id = o.work_id;

DROP VIEW effects;
CREATE VIEW effects AS
SELECT coalesce(t.label, wl.label, o.trial_ref) AS trial, o.trial_id, t.cell_product, t.route,
       t.donor, o.instrument, o.timepoint_months, o.quantity AS effect, o.arm AS comparison,
       max(CASE WHEN o.statistic IN ('mean', 'value') THEN o.value END) AS estimate,
       max(CASE WHEN o.statistic = 'ci_low' THEN o.value END) AS ci_low,
       max(CASE WHEN o.statistic = 'ci_high' THEN o.value END) AS ci_high,
       (SELECT p.value FROM outcomes p WHERE p.trial_ref = o.trial_ref AND p.quantity = 'p_value'
        AND p.instrument IS o.instrument AND p.timepoint_months IS o.timepoint_months
        AND p.arm = o.arm LIMIT 1) AS p_value,
       max(o.n) AS n, o.provenance, t.design, w.doi AS report_doi, o.source_url, o.location,
       t.cell_products, t.routes, t.donors
FROM outcomes o
LEFT JOIN trials t ON t.id = o.trial_id
LEFT JOIN works w ON w.id = o.work_id
LEFT JOIN work_labels wl ON wl.work_id = o.work_id
WHERE o.quantity IN ('between_group_difference', 'adjusted_difference', 'smd', 'cohens_d')
GROUP BY o.trial_ref, o.instrument, o.timepoint_months, o.quantity, o.arm, o.provenance,
         o.source_url;
