"""The names of the `compare:` choices the statistics compute: the multiple-comparison corrections a report
can apply over all of its tests (`correction:`) and how two variants' seeds are matched (`pairing:`).

Torch-, numpy- and scipy-free: the spec reader validates the names against these lists without loading the
statistics; `inference.adjust` computes each correction, `paired` each pairing.
"""
CORRECTIONS = ("holm", "bh", "none")
PAIRINGS = ("auto", "seed", "none")  # auto: pair by seed where both sides hold it; none: independent samples
