"""The code sandbox: canonical HumanEval solutions pass; hostile programs fail safely, with a reason.

Every hostile case runs under the layers detected on this machine; a case whose protection needs a
layer the machine lacks is skipped with that reason rather than run unprotected.
"""
from __future__ import annotations

import json
import os
import socket
import time

import pytest

from workbench.sandbox import runner as S
from workbench.scoring.codeeval import pass_at_k, program

LAYERS = S.layers()
FAST = S.SandboxConfig(timeout_s=3.0)


def needs(*names: str):
    missing = [n for n in names if n not in LAYERS]
    return pytest.mark.skipif(bool(missing), reason=f"sandbox layer(s) {missing} not available here")


# ---- ordinary outcomes ----------------------------------------------------------------------
@pytest.mark.parametrize("source, reason, detail", [
    ("assert sorted([3, 1, 2]) == [1, 2, 3]\nprint('ok')", "passed", ""),
    ("assert 1 == 2, 'one is not two'", "assertion", "AssertionError: one is not two"),
    ("def f(:\n    pass", "syntax", "SyntaxError"),
    ("{}['missing']", "runtime", "KeyError: 'missing'"),
    ("import sys\nsys.exit(3)", "runtime", "exit code 3"),
])
def test_outcomes_are_classified(source, reason, detail):
    r = S.run_program(source, FAST)
    assert r.reason == reason, r
    assert detail in r.detail
    assert r.passed == (reason == "passed")
    assert r.layers == LAYERS


def test_stdout_is_captured_and_threads_are_allowed():
    src = "import threading\nout=[]\nt=threading.Thread(target=lambda: out.append(7))\nt.start(); t.join()\nprint(out[0])"
    r = S.run_program(src, FAST)
    assert r.passed and r.stdout.strip() == "7"


def test_program_runs_in_a_fresh_private_directory():
    src = "import os, json\nprint(json.dumps([os.getcwd(), sorted(os.listdir('.'))]))\nopen('scratch.txt','w').write('x')"
    first = S.run_program(src, FAST)
    second = S.run_program(src, FAST)
    (cwd1, files1), (cwd2, files2) = json.loads(first.stdout), json.loads(second.stdout)
    assert first.passed and second.passed
    assert cwd1 != cwd2 and files1 == files2 == ["program.py"]  # nothing carried over
    assert not os.path.exists(cwd1)  # removed afterwards


def test_required_layer_that_is_missing_is_an_error(monkeypatch):
    monkeypatch.setattr(S, "landlock_available", lambda: False)
    with pytest.raises(S.SandboxError, match="landlock"):
        S.layers(S.SandboxConfig(landlock=True))


# ---- pass@k ---------------------------------------------------------------------------------
def test_pass_at_k_matches_the_combinatorial_definition():
    from math import comb

    for n, c, k in [(1, 1, 1), (1, 0, 1), (10, 3, 1), (10, 3, 5), (20, 0, 10), (20, 19, 2), (5, 5, 5)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


# ---- HumanEval canonical solutions ------------------------------------------------------------
@pytest.mark.slow
def test_all_164_canonical_humaneval_solutions_pass(real_data_dir):
    with open(real_data_dir / "humaneval" / "HumanEval.jsonl", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    assert len(problems) == 164
    programs = [program(p["prompt"], p["canonical_solution"], p["test"], p["entry_point"]) for p in problems]
    results = S.run_programs(programs, S.SandboxConfig(timeout_s=20.0), workers=2)
    failed = {p["task_id"]: (r.reason, r.detail) for p, r in zip(problems, results) if not r.passed}
    assert failed == {}
    # and a wrong body fails the same tests, with an assertion
    wrong = S.run_program(program(problems[0]["prompt"], "    return not True\n", problems[0]["test"],
                                  problems[0]["entry_point"]), FAST)
    assert wrong.reason == "assertion"


# ---- hostile completions ------------------------------------------------------------------------
def test_infinite_loop_times_out():
    r = S.run_program("while True:\n    pass", S.SandboxConfig(timeout_s=2.0))
    assert r.reason == "timeout" and not r.passed


def test_cpu_limit_ends_a_busy_loop_before_the_wall_clock():
    r = S.run_program("while True:\n    pass", S.SandboxConfig(timeout_s=30.0, cpu_s=1))
    assert r.reason == "timeout" and r.detail == "CPU-time limit" and r.signal == "SIGXCPU"


def test_ten_gigabyte_allocation_is_a_memory_failure():
    r = S.run_program("x = bytearray(10 * 1024 ** 3)\nprint(len(x))", FAST)
    assert r.reason == "memory" and not r.stdout


def test_huge_output_is_capped():
    cfg = S.SandboxConfig(timeout_s=5.0, output_bytes=1 << 16)
    r = S.run_program("import sys\nwhile True:\n    sys.stdout.write('y' * 4096)", cfg)
    assert r.reason == "output"
    assert len(r.stdout) <= 1 << 16


def test_writing_a_huge_file_is_capped():
    r = S.run_program("with open('big.bin', 'wb') as f:\n    f.write(b'0' * (50 << 20))", S.SandboxConfig(timeout_s=5.0))
    assert r.reason == "output" and "File too large" in r.detail


@needs("landlock")
def test_writing_and_deleting_outside_the_work_dir_is_refused(tmp_path):
    store = tmp_path / "workbench-runs" / "run-1"
    store.mkdir(parents=True)
    canary = store / "manifest.json"
    canary.write_text("keep me")
    before = set(os.listdir(tmp_path.parent))
    src = (
        "import os, shutil\n"
        "errors = []\n"
        f"for action in (lambda: os.remove({str(canary)!r}), lambda: shutil.rmtree({str(store)!r}),\n"
        f"               lambda: open({str(tmp_path / 'planted.txt')!r}, 'w').write('x'),\n"
        "               lambda: open('../escaped.txt', 'w').write('x'),\n"
        f"               lambda: os.rename({str(canary)!r}, 'stolen.json')):\n"
        "    try:\n"
        "        action()\n"
        "    except OSError as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(errors)\n"
        "assert not errors, errors\n"
    )
    r = S.run_program(src, FAST)
    assert r.reason == "assertion"
    assert r.stdout.count("PermissionError") == 5
    assert canary.read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["workbench-runs"]
    assert not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(canary)), "..", "escaped.txt"))
    assert set(os.listdir(tmp_path.parent)) == before


@pytest.mark.parametrize("layer_set", ["auto", "namespaces-only"])
def test_opening_a_socket_reaches_nothing(layer_set):
    if layer_set == "namespaces-only" and "namespaces" not in LAYERS:
        pytest.skip("no namespaces here")
    cfg = FAST if layer_set == "auto" else S.SandboxConfig(timeout_s=3.0, landlock=False, seccomp=False)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        # `_socket` bypasses the Python-level prelude: only a kernel layer can stop this.
        src = f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\ns.send(b'hi')"
        r = S.run_program(src, cfg)
        assert r.reason == "runtime", r
        assert any(e in r.detail for e in ("PermissionError", "OSError: [Errno 101]", "Network is unreachable"))
        with pytest.raises(BlockingIOError):
            server.accept()  # no connection ever arrived
    finally:
        server.close()


def test_killing_the_parent_is_refused():
    me = os.getpid()
    src = (
        "import os, signal\n"
        "errors = []\n"
        f"for pid in (os.getppid(), {me}):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(errors)\n"
        "assert False, 'still here'\n"
    )
    r = S.run_program(src, FAST)
    assert os.getpid() == me  # this test process is alive to see the result
    assert r.reason == "assertion", r
    assert len(eval(r.stdout)) == 2  # every kill attempt failed


def test_forking_is_refused_before_a_fork_bomb_is_tried():
    """Checks the guard with a single fork first; the bomb below only runs if this holds."""
    r = S.run_program("import posix\npid = posix.fork()\nif pid == 0:\n    posix._exit(0)\nposix.waitpid(pid, 0)", FAST)
    if "seccomp" in LAYERS:
        assert r.reason == "runtime" and "PermissionError" in r.detail
    else:
        pytest.skip("no seccomp: a single fork is allowed; the bomb relies on RLIMIT_NPROC")


def _fork_is_bounded() -> bool:
    return "seccomp" in LAYERS or (S.nproc_enforced() and "namespaces" in LAYERS)


@pytest.mark.skipif(not _fork_is_bounded(), reason="neither seccomp nor an enforced RLIMIT_NPROC bounds forks here")
def test_fork_bomb_is_contained():
    cfg = S.SandboxConfig(timeout_s=5.0, nproc_margin=8)
    probe = S.run_program("import posix\nprint(posix.fork())", cfg)  # one fork first: the guard must hold
    assert not probe.passed or S.nproc_enforced()
    r = S.run_program("import os\nwhile True:\n    os.fork()", cfg)
    assert not r.passed
    assert r.reason in ("runtime", "timeout", "killed")


@needs("namespaces")
def test_escaped_children_are_killed_with_the_sandbox():
    """A child that detaches (new session) still dies when the sample ends (no seccomp here)."""
    cfg = S.SandboxConfig(timeout_s=5.0, seccomp=False, landlock=False)
    src = (
        "import posix, time\n"
        "pid = posix.fork()\n"
        "if pid == 0:\n"
        "    posix.setsid()\n"
        "    print(posix.readlink('/proc/self'), flush=True)\n"  # host pid: this /proc is the host's
        "    time.sleep(600)\n"
        "time.sleep(0.5)\n"
    )
    r = S.run_program(src, cfg)
    assert r.passed, r
    host_pid = int(r.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(host_pid):
        time.sleep(0.05)
    assert not _alive(host_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            state = next(l for l in fh if l.startswith("State:"))
        return "Z" not in state.split()[1]
    except (FileNotFoundError, StopIteration, ProcessLookupError):
        return False
