"""remedysweep: reproduce classifier training collapse and test the remedies for it.

The code lives in three subpackages: :mod:`remedysweep.remedies` (remedy knobs and
their plugin API), :mod:`remedysweep.runner` (trial execution, study orchestration
and the CLI) and :mod:`remedysweep.reports` (analysis and HTML rendering).
"""

__version__ = "0.1.0"
