import pytest

from workbench.errors import ModelError
from workbench.eval.models import backends, load_model, parse_spec


def test_backends_are_registered_one_per_module():
    assert set(backends()) == {"hf", "gguf", "llamacpp", "openai", "int8"}


@pytest.mark.parametrize("spec", ["nope", "foo:bar", "hf:", "gpt-5"])
def test_unknown_specs_are_rejected_with_the_accepted_forms(spec):
    with pytest.raises(ModelError, match=r"unknown model spec .*: use one of gguf:<...>, hf:<...>, int8:<...>, llamacpp:<...>, openai:<...> or an embedded alias"):
        parse_spec(spec)


def test_aliases_resolve_to_the_gguf_backend():
    assert parse_spec("smollm2-135m") == ("gguf", "smollm2-135m")
    assert parse_spec("llamacpp:smollm2-135m") == ("llamacpp", "smollm2-135m")


def test_hf_directory_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        load_model(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ModelError, match="not a transformers checkpoint"):
        load_model(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="has no weights"):
        load_model(f"hf:{tmp_path}")


def test_openai_backend_needs_a_url_and_a_server():
    with pytest.raises(ModelError, match="needs a base URL"):
        load_model("openai:localhost")
    with pytest.raises(ModelError, match="no OpenAI-compatible server answering"):
        load_model("openai:http://127.0.0.1:9/v1")
