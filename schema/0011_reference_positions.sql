-- References keep their identity by position: a reference list that names one work twice
-- stores two rows. `occurrence` is the n-th time a reference's key comes up in its citing
-- work's list (the `#n` of its ref_key; 1 for an edge from a links service), and one resolved
-- edge per (citing, cited, occurrence): edges that different sources report for the same
-- pair still fold into one row with every source credited. Applied by kb.store.migrate.
ALTER TABLE citations ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 1;
UPDATE citations SET occurrence = CAST(substr(ref_key, length(rtrim(ref_key, '0123456789')) + 1)
                                       AS INTEGER)
 WHERE ref_key GLOB '*#[0-9]*' AND rtrim(ref_key, '0123456789') GLOB '*#';
DROP INDEX citations_edge;
CREATE UNIQUE INDEX citations_edge ON citations(citing_id, cited_id, occurrence)
    WHERE cited_id IS NOT NULL;

-- a work cited twice in one list is still cited by one work
DROP VIEW works_with_first_author;
CREATE VIEW works_with_first_author AS
SELECT w.id,
       (SELECT coalesce(a.family, a.name) FROM work_authors wa JOIN authors a ON a.id = wa.author_id
        WHERE wa.work_id = w.id ORDER BY wa.position LIMIT 1) AS first_author,
       (SELECT count(*) FROM work_authors wa WHERE wa.work_id = w.id) AS authors,
       w.year, w.title, w.journal, w.type, w.study_design, w.design_source, w.status,
       w.unverified, w.is_retracted, w.doi, w.pmid, w.pmcid, w.url,
       (SELECT count(DISTINCT c.citing_id) FROM citations c WHERE c.cited_id = w.id) AS cited_in_kb,
       (SELECT count(*) FROM citations c WHERE c.citing_id = w.id) AS references_listed
FROM works w;
