"""PyTorch as its users write it: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` with their defaults.

Defaults are kept: time-major inputs, ``torch.set_num_threads`` untouched, TF32
as PyTorch sets it (cuDNN may use TF32 for float32 RNNs, plain matmuls not), and
the GPU (cuDNN) when one is visible. In bfloat16 the module and its inputs are
cast to bfloat16, which is how cuDNN runs a bfloat16 RNN.
"""

from __future__ import annotations

import numpy as np

from benchmarks.shapes import Shape
from benchmarks.timing import Case

MODULES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def unavailable() -> str | None:
    import torch  # noqa: F401  (an ImportError is reported by layers.unavailable)

    return None


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build(cell: str, shape: Shape, mode: str, dtype: str, xs: np.ndarray) -> Case:
    import torch

    where = device()
    sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    torch.manual_seed(0)
    module = getattr(torch.nn, MODULES[cell])(shape.I, shape.H).to(device=where, dtype=torch_dtype)
    x = torch.from_numpy(xs).to(device=where, dtype=torch_dtype)  # (T, B, I): PyTorch's default
    cast = ".to(torch.bfloat16)" if dtype == "bfloat16" else ""
    what = f"torch.nn.{MODULES[cell]}({shape.I}, {shape.H}){cast}(x[T, B, I])"

    if mode == "train":
        x.requires_grad_(True)
        inputs = [x, *module.parameters()]

        def step():
            y, _ = module(x)
            grads = torch.autograd.grad(y.float().square().mean(), inputs)
            sync()
            return grads

        what = f"torch.autograd.grad(mean({what}**2), (x, *parameters))"
    else:
        def step():
            with torch.inference_mode():
                y, _ = module(x)
            sync()
            return y

        what = f"with torch.inference_mode(): {what}"
    return Case("PyTorch", what, step, None, device=where)
