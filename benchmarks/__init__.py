"""Speed and memory of jaxrnn against its peers, side by side in one process.

    python -m benchmarks.run                      # the shapes of this machine (CPU or GPU)
    python -m benchmarks.run --shapes all --repeats 50 --json out.json

Modules, one concept each:

* :mod:`benchmarks.shapes`  -- the problem sizes ``(B, T, I, H)`` and their presets;
* :mod:`benchmarks.layers`  -- one recurrent layer per framework, built as its users write it;
* :mod:`benchmarks.timing`  -- compile once, warm up, time N steps, summarise;
* :mod:`benchmarks.memory`  -- compiled peak memory of a long training step, with and without remat;
* :mod:`benchmarks.machine` -- which device and software produced the numbers;
* :mod:`benchmarks.report`  -- markdown tables and the JSON record;
* :mod:`benchmarks.run`     -- the command line that ties them together.

The benchmark uses jaxrnn's public API exactly as a user would: every
optimisation lives in the library, none here.
"""

import os

# JAX and PyTorch share one GPU in this process: JAX must not grab 75% of its
# memory up front. Harmless on CPU; set before anything imports jax.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
