"""Turning results into output: ``graph`` (text, DOT, GraphML, SVG/PNG and the HTML page from
``templates/``), ``plots`` (forest and time-course figures) and ``output`` (safe writing of
``--out`` files)."""
