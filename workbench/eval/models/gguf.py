"""`gguf:<file>` - a GGUF file dequantized into a float torch model.

transformers dequantizes GGUF on every load (15-30 s for SmolLM2, more for Gemma), so the first
load converts it once into a safetensors checkpoint cached under <cache>/gguf/<sha256>/, and later
loads read that (under a second).
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from workbench import settings
from workbench.errors import ModelError
from workbench.eval.models import register_backend
from workbench.eval.models.hashing import cached_sha256

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


def _check_magic(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"not a GGUF file: {path} is a directory" if path.is_dir() else f"GGUF file not found: {path}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read GGUF file {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (bad magic {magic!r}; expected b'GGUF')")


def check_gguf(path: Path) -> None:
    """ModelError unless `path` is a readable GGUF file with intact metadata."""
    _check_magic(path)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        n = len(reader.tensors)
    except Exception as exc:  # gguf raises ValueError/IndexError/struct errors on truncation
        raise ModelError(f"corrupt or truncated GGUF file {path}: {type(exc).__name__}: {exc}") from None
    if n == 0:
        raise ModelError(f"GGUF file {path} holds no tensors")


def gguf_quantization(path: Path) -> str:
    """The file type GGUF metadata declares (e.g. 'MOSTLY_Q4_1'), best effort."""
    try:
        from gguf import GGUFReader, LlamaFileType

        reader = GGUFReader(str(path))
        field = reader.fields.get("general.file_type")
        if field is not None:
            return LlamaFileType(int(field.parts[field.data[0]][0])).name
    except Exception:
        pass
    return "gguf"


def quantization_of(ckpt: Path, path: Path) -> str:
    """The GGUF's file type, as recorded when it was converted (parsing the GGUF again costs seconds)."""
    source = ckpt / "SOURCE"
    if source.is_file():
        for line in source.read_text().splitlines():
            if line.startswith("quantization "):
                return line.split(" ", 1)[1]
    return gguf_quantization(path)


def converted_checkpoint(path: Path) -> tuple[Path, str]:
    """(cache dir of the dequantized safetensors checkpoint, GGUF sha256); converts on first use.
    A file whose sha256 was converted before is that intact file: only a new one is parsed and checked."""
    _check_magic(path)
    sha = cached_sha256(path)
    out = settings.cache_dir() / "gguf" / sha
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out, sha
    check_gguf(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a float32 checkpoint in %s (once per file; 30-120 s)", path.name, out)
    tmp = out.with_name(f".{sha}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
    except Exception as exc:
        raise ModelError(f"cannot load GGUF {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    # transformers flags a GGUF-loaded model as quantized and refuses save_pretrained, although its
    # weights are already dense float32: drop the quantizer config first.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "SOURCE").write_text(f"{path}\nsha256 {sha}\nquantization {gguf_quantization(path)}\n")
    if out.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out, sha


def load_path(path: Path, spec: str, backend: str = "gguf", dtype: str = "float32", device: str | None = None,
              **opts: Any):
    from workbench.eval.models.hf import HFBackend, load_checkpoint

    ckpt, sha = converted_checkpoint(path)
    model, tok = load_checkpoint(ckpt, dtype, device)
    from workbench.eval.models.base import ModelInfo

    info = ModelInfo.from_hf(model, spec=spec, backend=backend, path=str(path), sha256=sha, dtype=dtype,
                             quantization=f"{quantization_of(ckpt, path)} dequantized to {dtype}", checkpoint=str(ckpt))
    return HFBackend(model, tok, info, **opts)


@register_backend("gguf", "a GGUF file, dequantized into torch (converted once, cached by sha256)")
def load(target: str, spec: str, **opts: Any):
    return load_path(resolve_gguf(target), spec, **opts)


def resolve_gguf(target: str) -> Path:
    """A GGUF path from a file path or an embedded alias name."""
    from workbench.eval.models.embedded import ALIASES, gguf_path

    return gguf_path(target) if target in ALIASES else Path(target).expanduser().resolve()
