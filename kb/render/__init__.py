"""Turning results into output. ``emit`` writes a finished payload to standard output or
``--out`` (through ``output``'s safe writing) and reads the terminal width; ``evidence``,
``outcomes``, ``meta``, ``search``, ``lists`` and ``graph`` each map their formats to writers
(``FORMATS`` and ``render``: adding a format is one entry there); ``plots`` draws the forest and
time-course figures, ``templates/`` holds the HTML page."""
