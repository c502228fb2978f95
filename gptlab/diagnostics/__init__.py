"""Offline diagnostics of trained runs and configs: length generalisation (`gptlab eval`), attention
maps (`gptlab attention`), memory and batch-size limits (`gptlab memory`), and the overhead benchmark of
the training-time hooks. The hooks themselves run inside training and live in gptlab.train.diag;
this package sits above gptlab.train and is never imported by it."""
