"""A study as rounds planned from the store: tuning, adaptive seeds and scale are the planner's policies."""
