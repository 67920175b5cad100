"""Synthetic long-dependency tasks, each batch a pure function of a random key.

A task's ``sample(key, ...)`` draws a batch from ``key`` alone: no generator
state, so whoever derives the key from ``(seed, split, step)`` (the experiment
runner does) gets the same batch at the same step, resumed or not.
"""
