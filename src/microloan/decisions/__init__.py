"""The credit decision (access-and-decisions §3–§4): characteristics, scorecards, knock-outs, fraud
signals, grade, rate and line."""
