"""The report's figures: `base` (the registry, the learning curves and the bar charts), `diagnostics`,
`compute`, `scale` and `study` (each adds the figures of one kind of study)."""
