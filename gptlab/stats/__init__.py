"""Pure statistics on arrays and DataFrames: no plotting, no Markdown, no file I/O, nothing of frames or report.

`inference` (intervals, tests, equivalence, power), `corrections` (the names of the multiplicity corrections),
`summary` (per-variant groups and pairwise comparisons), `family` (one family of tests adjusted together),
`effects` (the factorial OLS), `compute` (parameters, tokens, FLOPs, power laws), `scale` and `scale_fits`
(an effect across model sizes), `sequential` and `sequential_sim` (the group-sequential design and its
simulation), `adaptive` (the design replayed on stored values).
"""
