"""The backends that live in ``smr`` itself: the essay's single coordinator.

Nothing here registers anything on import: :mod:`smr.registry` names every
built-in backend in a table and imports its module on first use.
"""
