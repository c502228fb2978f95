"""The multiple-comparison corrections a report can apply over all of its tests (`compare: correction:`).

Torch-, numpy- and scipy-free: the spec reader validates the name against this list without loading the
statistics; `inference.adjust` computes each one.
"""
CORRECTIONS = ("holm", "bh", "none")
