"""Shared fixtures. `import workbench` first: it sets OMP_WAIT_POLICY and the offline flags before
torch or the HF stack is imported anywhere in the test session."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import workbench  # noqa: F401  (environment first)
from workbench import settings

TESTS = Path(__file__).resolve().parent
FIXTURE_MIRROR = TESTS / "fixtures" / "mirror"
CORPUS = (
    "The quick brown fox jumps over the lazy dog. Question: Answer: A. B. C. D. "
    "Which organ pumps blood? The heart, the lung, the kidney and the liver are organs. "
    "What do plants need to make food? Sunlight, water and air. True, False. "
    "def add(a, b):\n    return a + b\n#### 42\n1234567890 () [] {} , ; : ? ! ' \" - + = * / \\n"
)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real benchmark mirror (../shared/benchmark-data beside the checkout, or WORKBENCH_DATA_DIR)."""
    path = settings.data_dir()
    if not (path / "mmlu").is_dir():
        pytest.fail(f"benchmark mirror not found at {path}; set WORKBENCH_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def fixture_mirror() -> Path:
    return FIXTURE_MIRROR


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """A 2-layer random Llama with a byte-level BPE tokenizer trained on a tiny corpus (no weights needed)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS] * 4, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True, bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id,
                      pad_token_id=hf_tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(path)
    hf_tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    from workbench.eval.models.embedded import gguf_path

    return gguf_path("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2_checkpoint(smollm2_gguf) -> Path:
    """The dequantized SmolLM2 checkpoint (converted once per machine, then cached)."""
    from workbench.eval.models.gguf import converted_checkpoint

    return converted_checkpoint(smollm2_gguf)[0]


@pytest.fixture(scope="session")
def gemma3_checkpoint() -> Path:
    """The dequantized Gemma 3 270M checkpoint (converted once per machine, then cached)."""
    from workbench.eval.models.gguf import converted_checkpoint, resolve_gguf

    return converted_checkpoint(resolve_gguf("gemma3-270m"))[0]


@pytest.fixture
def run_cli(tmp_path):
    """Run the real `workbench` CLI in a subprocess; returns CompletedProcess."""

    def run(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        full_env = dict(os.environ, **(env or {}))
        return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                              env=full_env, timeout=timeout, cwd=tmp_path)

    return run


@dataclass
class CliResult:
    """What one in-process `workbench` call returned and printed."""

    rc: int
    out: str
    err: str

    def error_line(self, *needles: str) -> str:
        """The CLI's contract for bad input: exit 2, no traceback, exactly one `workbench: error:` line, naming
        each of `needles`; returns that line."""
        assert "Traceback" not in self.err, self.err
        lines = [line for line in self.err.splitlines() if line.startswith("workbench: error:")]
        assert self.rc == 2 and len(lines) == 1, (self.rc, self.out[-500:], self.err[-2000:])
        for needle in needles:
            assert needle in lines[0], lines[0]
        return lines[0]


@pytest.fixture
def wb(capsys):
    """Run `workbench ARGS...` in this process (argparse exits become the return code); returns a CliResult.
    An exception the CLI does not turn into an error line propagates, failing the test with its traceback."""
    from workbench.cli import main

    def run(*argv: object) -> CliResult:
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code
        captured = capsys.readouterr()
        return CliResult(rc, captured.out, captured.err)

    return run


def derive_run(store, src: str, dst: str, edit, manifest_edit=None) -> None:
    """Publish run `dst`: run `src` with its samples passed through `edit(df) -> df` (and its manifest through
    `manifest_edit(dict) -> dict`) and metrics recomputed (through the store, so the new run's file digests
    are its own)."""
    from workbench.eval.harness import compute_metrics

    run = store.load(src)
    df = edit(run.samples)
    manifest = {k: v for k, v in run.manifest.items() if k not in ("run_id", "status", "files")}
    if manifest_edit is not None:
        manifest = manifest_edit(manifest)
    store.publish(store.create(dst, manifest), df, compute_metrics(df, manifest, 0))


# ---- a real Ray cluster on this machine: a head node and a second node joined with `ray start --address` --
class RayCluster:
    """Two Ray nodes on 127.0.0.1 (1 CPU each, small object stores), token-authenticated, started by the
    tests and torn down by process group (never `ray stop`, which would kill every Ray on the machine)."""

    def __init__(self, root: Path) -> None:
        import secrets
        import socket

        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        token = root / "token"
        token.write_text(secrets.token_hex(32))
        self.env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
                        RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(TESTS.parent))
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _start(self, *args: str, log: str) -> None:
        ray = Path(sys.executable).parent / "ray"
        cmd = [str(ray), "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
               "--object-store-memory=100000000", "--disable-usage-stats", *args]
        with open(self.root / log, "w") as out:
            self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                               start_new_session=True))

    def nodes_alive(self) -> int:
        code = (f"import ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                "print(sum(n['Alive'] for n in ray.nodes()))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=120)
        return int(out.stdout.strip() or 0)

    def start(self, timeout: float = 240) -> None:
        import time

        self._start("--head", f"--port={self.port}", "--include-dashboard=false",
                    f"--temp-dir={self.root / 't'}", log="head.log")
        self._wait(lambda: "Ray runtime started" in (self.root / "head.log").read_text(), timeout, "head.log")
        self._start(f"--address={self.address}", log="node.log")
        t0 = time.time()
        while self.nodes_alive() < 2:
            if time.time() - t0 > timeout:
                raise RuntimeError("the second Ray node did not join:\n" + (self.root / "node.log").read_text()[-2000:])
            time.sleep(2)

    def _wait(self, ok, timeout: float, log: str) -> None:
        import time

        t0 = time.time()
        while not ok():
            if time.time() - t0 > timeout or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"Ray did not start:\n{(self.root / log).read_text()[-2000:]}")
            time.sleep(0.5)

    def _members(self) -> dict[int, str]:
        """pid -> process title of every process of this cluster (each node's `ray start` leads a session)."""
        sessions = {p.pid for p in self.procs}
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.getsid(int(proc.name)) in sessions:
                    found[int(proc.name)] = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except (OSError, ProcessLookupError):
                continue
        return found

    def worker_pids(self, method: str = "") -> list[int]:
        """Processes of this cluster running our actor (executing `method`, if given)."""
        return [pid for pid, title in self._members().items()
                if title.startswith("ray::_Worker") and (not method or title.startswith(f"ray::_Worker.{method}"))]

    def stop(self) -> None:
        import signal
        import time

        for p in reversed(self.procs):  # the node first, then the head; each takes its children with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 5
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.time()))
        for p in self.procs:  # whatever ignored SIGTERM (gcs_server often does)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in self._members():  # Ray workers run in process groups of their own, in the same sessions
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def ray_cluster():
    """A running two-node Ray cluster on 127.0.0.1; `.address` to join it, `.env` for the processes that do."""
    import shutil
    import tempfile

    pytest.importorskip("ray", reason="the distributed extra is not installed (pip install -e '.[distributed]')")
    # Ray's unix socket paths must stay short: a temp dir of our own under /tmp, not pytest's deep one.
    root = Path(tempfile.mkdtemp(prefix="wbray-", dir="/tmp"))
    cluster = RayCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
