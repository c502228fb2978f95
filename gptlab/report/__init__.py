"""The report: frames and statistics in words and pictures.

`build` (analyze a store and write reports/<experiment>/), `sections/` (one function per report section, to
neutral blocks), `blocks` and `render` (blocks to Markdown and HTML), `figures/` (matplotlib), `findings`,
`headline`, `health`, `samples`, `stages`, `study_extras`, `scale_text`, `compute_text` (sentences and
study-design columns), `csv_files` (summary.csv and effects.csv). It may import stats and frames; neither
imports it.
"""
