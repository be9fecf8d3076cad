-- kb search schema: the full-text index holds what kb knows about a work — its title, abstract,
-- keywords, MeSH, authors and journal, and the facts of the trials it reports or pools (each
-- normalised value beside the text as stated, registry ids, outcome instruments). Applied by
-- kb.store.migrate as migration 9. kb.store keeps the index in sync (sync_fts / rebuild_fts,
-- also when a trial's facts, reports or outcomes change).
--
-- The index keeps its own copy of the text (not FTS5 external content): refreshing one work's
-- row needs the old values, which an external-content index cannot recover once the works,
-- trials and outcomes tables have changed, and SQLite 3.40 (Debian 12) has no contentless
-- delete. The copy is what snippets and highlights are made from.

DROP TABLE works_fts;
DROP VIEW works_fts_source;

CREATE VIRTUAL TABLE works_fts USING fts5(
    title, abstract, keywords, mesh, authors, journal, trials,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- What one trial contributes to the index: its label, registry ids, every normalised fact beside
-- the text as stated, the descriptive facts as stated, and its outcome instruments.
CREATE VIEW trial_search_text AS
SELECT t.id AS trial_id,
       coalesce(t.label || '; ', '') || coalesce(t.registry_ids || '; ', '')
       || coalesce(t.design || '; ', '') || coalesce(t.cell_product || '; ', '')
       || coalesce(t.cell_type || '; ', '') || coalesce(t.donor || '; ', '')
       || coalesce(t.origin || '; ', '') || coalesce(t.route || '; ', '')
       || coalesce(t.route_as_stated || '; ', '') || coalesce(t.dose || '; ', '')
       || coalesce(t.blinding || '; ', '') || coalesce(t.blinding_as_stated || '; ', '')
       || coalesce(t.control || '; ', '') || coalesce(t.control_as_stated || '; ', '')
       || coalesce(t.outcomes || '; ', '') || coalesce(t.country || '; ', '')
       || coalesce((SELECT group_concat(f.value, '; ') FROM trial_facts f WHERE f.trial_id = t.id
                    AND f.field IN ('title', 'official_title', 'cell_type_long', 'co_intervention',
                                    'cp_type', 'severity', 'site', 'sponsor')) || '; ', '')
       || coalesce((SELECT group_concat(instrument, '; ') FROM (
                        SELECT instrument FROM outcomes WHERE trial_id = t.id AND instrument IS NOT NULL
                        UNION SELECT instrument_as_stated FROM outcomes WHERE trial_id = t.id
                        AND instrument_as_stated IS NOT NULL)), '') AS text
FROM trials t;

-- What goes into works_fts for each work; kb.store copies from it (columns in index order).
CREATE VIEW works_fts_source AS
SELECT w.id AS rowid,
       trim(coalesce(w.title, '') || coalesce(': ' || w.subtitle, '')) AS title,
       coalesce(w.abstract, '') AS abstract,
       coalesce((SELECT group_concat(keyword, '; ') FROM keywords k WHERE k.work_id = w.id), '') AS keywords,
       coalesce((SELECT group_concat(DISTINCT m.descriptor) FROM mesh m WHERE m.work_id = w.id), '') AS mesh,
       coalesce((SELECT group_concat(name, '; ') FROM (SELECT a.name FROM work_authors wa
                 JOIN authors a ON a.id = wa.author_id WHERE wa.work_id = w.id ORDER BY wa.position)), '') AS authors,
       coalesce(w.journal, '') || coalesce('; ' || nullif(w.journal_abbrev, w.journal), '') AS journal,
       coalesce((SELECT group_concat(s.text, ' | ') FROM (SELECT DISTINCT trial_id FROM trial_reports_all
                 WHERE work_id = w.id) r JOIN trial_search_text s ON s.trial_id = r.trial_id), '') AS trials
FROM works w;

INSERT INTO works_fts(rowid, title, abstract, keywords, mesh, authors, journal, trials)
SELECT * FROM works_fts_source;
