"""Training and validating points scorecards (access-and-decisions §4).

``data`` reads a labelled table, ``train`` bins, selects, regresses and scales, ``metrics``
measures (AUC, KS, Gini, PSI, calibration) and ``report`` writes report.json and report.html.
The exported artifact is served by ``microloan.decisions.scorecard`` (standard library only).

optbinning, scikit-learn and matplotlib take seconds to import, so they are imported inside the
functions that need them: importing this package (or the CLI) stays cheap.
"""
