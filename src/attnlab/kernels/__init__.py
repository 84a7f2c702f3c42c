"""The speed paths, each tested against the plain math it replaces.

- :mod:`.backend` — which path computes scaled dot-product attention (chosen in one place,
  from the inputs' shapes, dtypes and flags only).
- :mod:`.fused_weights` — attention weights from the flash kernel's log-sum-exp.
- :mod:`.causal_kernel` — self-attention in C (fp32, CPU; causal or unmasked), forward and backward.
- :mod:`.causal_bmm` — self-attention (causal or unmasked) as batched products with its own backward (bf16).
- :mod:`.linear` — ``nn.Linear`` with oneDNN's fp32 products on the CPU.
- :mod:`.gelu_tanh` — GPT-2's tanh-GELU in one pass each way.
- :mod:`.cross_entropy` — mean cross-entropy over a large vocabulary in cache-sized row blocks.
- :mod:`.native` — the C sources, their build and their cache (and GPT's C decoding step).

Rule: kernels import nothing from attnlab but :mod:`attnlab.errors`; ``attention/`` and
``layers/`` import kernels, never the other way round. Timings live in ``docs/benchmarks.md``.
"""
