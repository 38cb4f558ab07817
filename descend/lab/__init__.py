"""The optimizer lab: seed worked examples, test functions and benchmark runs.

>>> import descend as dc
>>> from descend.lab import functions, benchmarks
>>> problem = functions.ill_conditioned_quadratic()
>>> result = benchmarks.minimize(dc.optim.adam(lr=0.1), problem, steps=2000, tol=1e-6)

The command-line interface (``descend example``, ``descend demo``) only formats
what these functions return.
"""

from descend.lab import benchmarks, functions, seeds

__all__ = ["benchmarks", "functions", "seeds"]
