"""The run store and W&B as DataFrames: one row per run (`runs`) and one per logged step (`history`).

The only reader of the store's files outside gptlab/store/: `load` (the store), `wandb_load` (W&B offline
directories and projects), `records` (the columns both produce) and `design` (what a study varies). It imports
no statistics and draws nothing. `gptlab.load_runs` and `gptlab.load_history` are `load.load_runs` and
`load.load_history`.
"""
