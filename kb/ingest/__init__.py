"""Getting works into the KB: ``add`` (one identifier through the scrapers), ``files`` (RIS,
BibTeX, MEDLINE, PubMed XML, CSL-JSON, CSV files), ``crawl`` (following citations), ``resolve``
(linking references to works), ``seed`` and ``build`` (the bundled KB from the curated corpus).
Every write goes through :mod:`kb.store`."""
