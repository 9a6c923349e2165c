"""The GMP batch rules at run time: calendars, operators, cleaning skids, QC, and the unit loop that uses them.

Lines that use none of the rules run on the lean loop of ``twin.engine.unit``.
"""
