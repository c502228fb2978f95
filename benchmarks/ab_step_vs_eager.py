from gptlab.config import build_config
from gptlab.bench.measure import time_train_step, time_eager_loop
cfg = build_config(dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, device="cpu"))
for rep in range(3):
    for label, fn in [("ours basic", lambda: time_train_step(cfg, "ours", 100, 10)),
                      ("ours off", lambda: time_train_step(cfg.replace(diagnostics="off"), "off", 100, 10)),
                      ("eager", lambda: time_eager_loop(cfg, 100, 10))]:
        t = fn(); print(rep, label, round(t.median_ms, 2), round(t.min_ms, 2), flush=True)
