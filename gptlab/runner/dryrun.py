"""`gptlab run --dry-run`: the planned runs, their state in the store, and a scale study's sizes."""
from __future__ import annotations


def dry_run_table(spec, jobs, slots: list[str]) -> str:  # noqa: ANN001
    from gptlab.overrides import format_value

    rows = []
    for i, job in enumerate(jobs):
        diff = " ".join(f"{k}={format_value(v)}" for k, v in job.run.overrides.items()) or "-"
        state = job.describe()
        device = "cpu" if slots[i % len(slots)] == "cpu" else f"cuda:{slots[i % len(slots)]}"
        rows.append((job.run.name, diff, device, state))
    headers = ("run", "differs from base", "device", "state")
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    todo = sum(not j.action.startswith("skip") for j in jobs)
    lines = [f"{spec.name}: {len(jobs)} runs ({todo} to execute) from {spec.path}", fmt.format(*headers),
             fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def scale_lines(spec) -> list[str]:  # noqa: ANN001
    """A scale study's sizes by parameter count, with the tokens each trains on."""
    if spec.scale is None:
        return []
    budget = "tokens_per_param " + f"{spec.scale.tokens_per_param:g}" if spec.scale.tokens_per_param else \
        "a fixed step budget"
    lines = [f"sizes, by parameter count ({budget}):"]
    seen = set()
    for run in spec.runs:
        size = run.study.get("size")
        if size in seen:
            continue
        seen.add(size)
        t, m = run.config.train, run.config.model
        tokens = t.max_steps * t.batch_size * t.grad_accum * m.block_size
        cell = next(c for c in spec.cells if c.size == size)
        lines.append(f"  {size}: n_layer={m.n_layer} n_embd={m.n_embd} | {cell.n_params:,} params | "
                     f"{t.max_steps} steps, {tokens:,} tokens ({tokens / cell.n_params:.1f} per param)")
    return lines
