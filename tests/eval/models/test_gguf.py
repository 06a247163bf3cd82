import pytest

from workbench.errors import ModelError
from workbench.eval.models import load_model
from workbench.eval.models.gguf import check_gguf, converted_checkpoint


def test_missing_gguf(tmp_path):
    with pytest.raises(ModelError, match="GGUF file not found"):
        load_model(f"gguf:{tmp_path / 'nope.gguf'}")


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a gguf")
    with pytest.raises(ModelError, match="not a GGUF file"):
        check_gguf(bad)


@pytest.mark.parametrize("keep", [1_000_000, 50_000_000])
def test_truncated_gguf_is_reported_as_corrupt(smollm2_gguf, tmp_path, keep):
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf, "rb") as src:
        cut.write_bytes(src.read(keep))
    with pytest.raises(ModelError, match="corrupt or truncated GGUF"):
        converted_checkpoint(cut)


@pytest.mark.slow
def test_embedded_smollm2_converts_once_and_reloads_from_cache(smollm2_gguf, smollm2_checkpoint):
    again, sha = converted_checkpoint(smollm2_gguf)
    assert again == smollm2_checkpoint and again.name == sha
    assert (again / "model.safetensors").is_file() and (again / "tokenizer.json").is_file()
    lm = load_model("smollm2-135m")
    assert lm.info.sha256 == sha and lm.info.quantization.startswith("MOSTLY_Q4_1")
    assert lm.info.architecture == "LlamaForCausalLM" and lm.info.parameters == 134_515_008
