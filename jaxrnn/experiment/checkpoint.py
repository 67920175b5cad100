"""Checkpoints of a train state through orbax-checkpoint: atomic, the last few kept.

A checkpoint is the whole :class:`~jaxrnn.training.TrainState` pytree at a
step, in ``DIR/<step>/``. Orbax writes it to a temporary folder and renames
it when complete, so a run killed while saving leaves the previous
checkpoints as they were; only the ``keep`` newest are kept.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax

# Orbax logs every save at INFO through absl; a training loop's output is ours.
logging.getLogger("absl").setLevel(logging.WARNING)

import orbax.checkpoint as ocp  # noqa: E402


class Checkpointer:
    """Save and restore pytrees by step in one folder.

    Args:
      directory: the folder (created if missing).
      keep: how many of the newest checkpoints to keep.

    Use as a context manager, or call :meth:`close`, so that an asynchronous
    save finishes before the process ends.
    """

    def __init__(self, directory: str | Path, keep: int = 3):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """The steps saved, oldest first."""
        return sorted(self._manager.all_steps())

    def latest(self) -> int | None:
        """The newest step saved, or ``None``."""
        return self._manager.latest_step()

    def save(self, step: int, tree: Any) -> None:
        """Save ``tree`` as step ``step`` (in the background; :meth:`wait` to block)."""
        self._manager.save(step, args=ocp.args.StandardSave(tree))

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The tree saved at ``step`` (default: the newest), with the structure and dtypes of ``like``."""
        step = self.latest() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree_util.tree_map(_abstract, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        """Block until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _abstract(leaf: Any) -> Any:
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    return leaf
