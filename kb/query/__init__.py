"""Reading the KB: ``search`` (full-text), ``graph`` (the citation graph and its algorithms),
``export`` (records in other tools' formats) and ``stats``. Nothing here writes."""
