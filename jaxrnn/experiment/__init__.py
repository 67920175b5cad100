"""The experiment app beside the library: configs, the runner, run folders, plots, the ``jaxrnn`` command.

The only part of jaxrnn that reads YAML, validates configs (pydantic), writes
checkpoints (orbax), shows progress (tqdm), draws plots (matplotlib), writes
TensorBoard event files (tensorboardX) or builds objects from names
(:mod:`jaxrnn.experiment.registry`). ``import jaxrnn``
loads none of it.
"""
