-- Browsing views for Datasette (kb serve) and ad-hoc SQL: plain SELECTs over the core and
-- evidence tables, no data of their own. Applied by kb.store.migrate as migration 4.

-- One row per work with its first author, author count and how it sits in the KB's graph.
CREATE VIEW works_with_first_author AS
SELECT w.id,
       (SELECT coalesce(a.family, a.name) FROM work_authors wa JOIN authors a ON a.id = wa.author_id
        WHERE wa.work_id = w.id ORDER BY wa.position LIMIT 1) AS first_author,
       (SELECT count(*) FROM work_authors wa WHERE wa.work_id = w.id) AS authors,
       w.year, w.title, w.journal, w.type, w.study_design, w.design_source, w.status,
       w.unverified, w.is_retracted, w.doi, w.pmid, w.pmcid, w.url,
       (SELECT count(*) FROM citations c WHERE c.cited_id = w.id) AS cited_in_kb,
       (SELECT count(*) FROM citations c WHERE c.citing_id = w.id) AS references_listed
FROM works w;

-- Every citation row with both ends labelled; the cited end falls back to what the reference
-- says while it is unresolved.
CREATE VIEW citation_edges AS
SELECT c.id AS citation_id,
       c.citing_id, fl.label AS citing_label, f.title AS citing_title, f.doi AS citing_doi,
       c.position,
       c.cited_id, coalesce(tl.label, c.first_author || coalesce(' ' || c.year, '')) AS cited_label,
       coalesce(t.title, c.title, c.unstructured) AS cited_title,
       coalesce(t.doi, c.cited_doi) AS cited_doi, t.study_design AS cited_design,
       c.resolved_by, c.match_score, c.sources
FROM citations c
JOIN works f ON f.id = c.citing_id
JOIN work_labels fl ON fl.work_id = f.id
LEFT JOIN works t ON t.id = c.cited_id
LEFT JOIN work_labels tl ON tl.work_id = t.id;
