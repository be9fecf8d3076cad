-- When kb last derived a work's evidence (study design, trial facts, lineage, flags).
-- A work whose annotated_at is missing or older than its updated_at is due: the next command
-- that stores works annotates it, even when the run that stored it was killed.
ALTER TABLE works ADD COLUMN annotated_at TEXT;
-- Works stored before this version count as annotated as they were last changed.
UPDATE works SET annotated_at = updated_at;
CREATE INDEX works_annotation_due ON works(id) WHERE annotated_at IS NULL OR annotated_at < updated_at;
