#!/usr/bin/python3
"""Times PyTorch's float32 matrix products under the OpenBLAS core type of
the environment (OPENBLAS_CORETYPE, read when OpenBLAS loads), for
scripts/bench_side_by_side.sh to pick the fastest core type for the PyTorch
baseline.

  OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \\
    /usr/bin/python3 bench/openblas_coretype.py [threads] [seconds]

Prints one JSON object: the core type OpenBLAS reports (openblas_get_corename,
which shows whether the request took), and the GFLOP/s of the products of a
30m training step's layer (forward, input and weight gradients of the MLP
and attention projections at 1024 tokens), timed for about `seconds`.
"""
import ctypes
import json
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
torch.set_num_threads(threads)

try:
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_corename.restype = ctypes.c_char_p
    core = lib.openblas_get_corename().decode()
except OSError:
    core = "unknown (no libopenblas.so.0)"

g = torch.Generator().manual_seed(0)
# (m, n, k) of y = x·Wᵀ, dx = dy·W and dW = dyᵀ·x for the 30m MLP and q/k/v/o.
shapes = [(1024, 1376, 512), (1024, 512, 1376), (1024, 512, 512)]
ops = []
for m, n, k in shapes:
    x, w, dy = (torch.randn(m, k, generator=g), torch.randn(n, k, generator=g), torch.randn(m, n, generator=g))
    ops += [(lambda x=x, w=w: x @ w.t(), 2 * m * n * k),
            (lambda dy=dy, w=w: dy @ w, 2 * m * n * k),
            (lambda dy=dy, x=x: dy.t() @ x, 2 * m * n * k)]
for f, _ in ops:  # warm up
    f()
flop, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    for f, fl in ops:
        f()
        flop += fl
dt = time.perf_counter() - t0
print(json.dumps({"coretype": core, "gflops": round(flop / dt / 1e9, 1), "threads": threads}))
