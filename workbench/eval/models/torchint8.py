"""`int8:<gguf file or alias | checkpoint dir>` - torch dynamic int8 quantization on CPU.

The decoder's Linear layers get int8 weights (per-tensor affine) with activations quantized on the
fly (`torch.ao.quantization.quantize_dynamic`); embeddings, norms and the LM head stay float32. It
is the torch-native counterpart of the dequantized `gguf:` and the quantized-kernel `llamacpp:`
backends, so the three can be compared item by item.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from workbench.errors import ModelError
from workbench.eval.models import register_backend
from workbench.eval.models.base import ModelInfo


@register_backend("int8", "a GGUF (file or alias) or checkpoint dir, decoder Linear layers in torch dynamic int8 (CPU)")
def load(target: str, spec: str, dtype: str = "float32", device: str | None = None, **opts: Any):
    import torch
    from torch.ao.quantization import quantize_dynamic

    from workbench.eval.models.gguf import converted_checkpoint, quantization_of, resolve_gguf
    from workbench.eval.models.hf import HFBackend, load_checkpoint, weights_sha256

    if device not in (None, "cpu"):
        raise ModelError(f"int8: torch dynamic int8 kernels run on the CPU only; --device {device} is for hf/gguf")
    path = Path(target).expanduser()
    if path.is_dir():
        ckpt, sha, source = path.resolve(), weights_sha256(path.resolve()), "float32 checkpoint"
    else:
        gguf = resolve_gguf(target)
        ckpt, sha = converted_checkpoint(gguf)
        source, path = f"{quantization_of(ckpt, gguf)} dequantized", gguf
    model, tok = load_checkpoint(ckpt, "float32", device="cpu")  # torch dynamic int8 kernels are CPU-only
    n_params = sum(t.numel() for t in model.parameters())
    with warnings.catch_warnings():  # torch flags its quantized tensor API as deprecated
        warnings.simplefilter("ignore")
        model.model = quantize_dynamic(model.model, {torch.nn.Linear}, dtype=torch.qint8)
    info = ModelInfo.from_hf(model, spec=spec, backend="int8", path=str(path), sha256=sha, dtype="float32",
                             quantization=f"{source}, torch dynamic int8 (qint8 per-tensor Linear weights)",
                             parameters=n_params, checkpoint=str(ckpt),
                             torch_quantized_engine=torch.backends.quantized.engine)
    return HFBackend(model, tok, info, **opts)
