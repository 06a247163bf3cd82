"""Run untrusted Python (model-written code) in a separate, locked-down process, then its tests.

One process per program, in layers; which layers apply is detected at run time and recorded in
every result (`ExecResult.layers`):

- `process` (always): a fresh `python -I -S` process in its own session, started in a fresh
  temporary working directory with a scrubbed environment; rlimits on CPU time, address space,
  file size (which also caps stdout/stderr), open files, process count and core dumps; a
  wall-clock timeout, after which the whole process group is SIGKILLed (it is killed on a normal
  exit too, so no child outlives its sample).
- `namespaces`: `unshare --user --map-root-user --net --pid --ipc --fork --kill-child` (works
  without root where unprivileged user namespaces are allowed): no network at all (an empty
  network namespace, not even loopback), no other process visible or signalable, and when the
  program's namespace ends the kernel kills every process left in it.
- `landlock` (Linux >= 5.13): writes only beneath the working directory (and /dev/null); TCP bind
  and connect denied (ABI >= 4); signals and abstract unix sockets scoped to the sandbox (ABI >= 6).
- `seccomp` (x86_64, aarch64): fork/vfork/clone-without-CLONE_THREAD, exec, ptrace, reading or
  writing other processes' memory, setrlimit/prlimit and io_uring refused; kill/tgkill only to the
  program itself; no socket() of any family (so no pathname unix socket either: Landlock does not
  cover connecting to one), no connect(), no sendto() with an address, no sendmsg(); socketpair()
  and send() on it still work.
- `prelude`: only where seccomp is unavailable, Python-level refusals (os.fork, os.kill of another
  pid, subprocess, socket). A program can undo these; this layer is NOT a security boundary.

Landlock, seccomp and the namespaces are kernel-enforced and irreversible once installed, so the
program cannot lift them. Two honest limits: reads are not restricted (the program can read what
the invoking user can read, but with the network layers it cannot send it anywhere), and
RLIMIT_NPROC does not bind a process whose real uid is 0 (then seccomp is what stops fork bombs).

When a sample passes (threat model: the program is written to be scored "passed" without passing).
A `Program` is untrusted `source` and trusted `test` code run after it in the same interpreter
(HumanEval: prompt + completion, then the test and `check(entry_point)`; a plain string has no test
and passes by running to its end). The sample passes only when the runner (`child`), with
control back after the source and then the test returned, writes a completion report carrying the
sample's token, and the parent finds that token in it. The token is 128 random bits per sample
(`secrets`), sent as two XOR shares through a pipe the runner reads and closes before the program's
first line: it is in no argv, environment variable, file, stdin or program text, and is never whole
in the process until the report is written. So every way out before the tests return fails,
whatever the exit status: `sys.exit`/`raise SystemExit` anywhere (caught: `early_exit`),
`os._exit(0)`, a thread or signal handler or `__del__` that exits mid-test, `atexit` hooks (never
run: the runner leaves by `os._exit`), writing a made-up report to every descriptor (`early_exit`);
a signal to itself (`killed`). Failure reasons come from the report too, so a program cannot fake
one (say, the sandbox-setup-failed exit code, which would abort the evaluation). The test is
compiled apart from the program (an unclosed string or bracket cannot swallow it), runs with the
real builtins restored and in globals of its own (the program's names that shadow a builtin are
left out, and the program's functions cannot rebind the test's names), and an audit hook refuses
`sys.settrace`/`setprofile` (a trace function can skip a test's lines), further audit hooks, `gc`
object-graph walks and ctypes. What a program can still do, sharing one interpreter with its tests
(as in openai/human-eval, whose harness falls to all of these and to some of the above): return
objects that compare equal to anything (`__eq__`), patch a module the tests import
(`math.isclose`), read expected values from its caller's frame, or, written against this runner,
walk the interpreter's frames to the token shares and forge a report. Audit hooks are not a
security boundary; a program that targets this harness in particular is out of reach of any
in-process check.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.sandbox import child

CHILD = Path(child.__file__).resolve()
UNSHARE_ARGS = ("--user", "--map-root-user", "--net", "--pid", "--ipc", "--fork", "--kill-child")
REASONS = ("passed", "assertion", "timeout", "killed", "syntax", "runtime", "memory", "output", "early_exit")


class SandboxError(WorkbenchError):
    """The sandbox itself could not be set up (not the program's fault)."""


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and layers for one program. `None` for a layer means: use it if available."""

    timeout_s: float = 10.0
    cpu_s: int | None = None  # default: the wall-clock timeout, rounded up
    memory_mb: int = 1024
    output_bytes: int = 1 << 20  # RLIMIT_FSIZE: caps stdout, stderr and every file written
    open_files: int = 64
    nproc_margin: int = 16  # processes allowed above what the user already runs
    namespaces: bool | None = None
    landlock: bool | None = None
    seccomp: bool | None = None


@dataclass(frozen=True)
class Program:
    """Untrusted `source`, then trusted `test` code run after it in the same interpreter."""

    source: str
    test: str = ""


@dataclass
class ExecResult:
    """How one program ended. `reason` is one of REASONS; `detail` says more (exception, signal)."""

    reason: str
    detail: str = ""
    returncode: int | None = None
    signal: str | None = None
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    layers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.reason == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


# ---- layer detection ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether `unshare` can make user+net+pid namespaces here (probed once per process)."""
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        r = subprocess.run([exe, *UNSHARE_ARGS, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


@lru_cache(maxsize=1)
def landlock_available() -> bool:
    try:
        return child.landlock_abi() >= 1
    except (OSError, AttributeError):
        return False


@lru_cache(maxsize=1)
def seccomp_available() -> bool:
    try:
        with open("/proc/self/status") as fh:
            has = any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False
    return has and child.seccomp_supported()


def layers(cfg: SandboxConfig = SandboxConfig()) -> tuple[str, ...]:
    """The isolation layers a program run under `cfg` gets on this machine."""
    out = ["process"]

    def want(flag: bool | None, available: bool, name: str) -> bool:
        if flag and not available:
            raise SandboxError(f"sandbox layer {name!r} was required but is not available on this machine")
        return available if flag is None else bool(flag)

    if want(cfg.namespaces, namespaces_available(), "namespaces"):
        out.append("namespaces")
    if want(cfg.landlock, landlock_available(), "landlock"):
        out.append("landlock")
    if want(cfg.seccomp, seccomp_available(), "seccomp"):
        out.append("seccomp")
    else:
        out.append("prelude")
    return tuple(out)


def nproc_enforced() -> bool:
    """RLIMIT_NPROC binds only processes whose real uid is not 0."""
    return os.getuid() != 0


# ---- running ------------------------------------------------------------------------------------
def _user_processes() -> int:
    uid, n = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                continue
    return n


def _limits(cfg: SandboxConfig, nproc: int):
    cpu = int(cfg.cpu_s or -(-cfg.timeout_s // 1))
    mem = cfg.memory_mb << 20
    table = [
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (cfg.output_bytes, cfg.output_bytes)),
        (resource.RLIMIT_NOFILE, (cfg.open_files, cfg.open_files)),
        (resource.RLIMIT_NPROC, (nproc, nproc)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]

    def preexec() -> None:  # runs in the forked child before exec: C calls only
        for res, lim in table:
            resource.setrlimit(res, lim)

    return preexec


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for exit without reaping (the zombie pins the process-group id); True if timed out."""
    deadline, pause = time.monotonic() + timeout, 0.002
    while True:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid == proc.pid:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _read(path: Path, cap: int) -> tuple[str, int]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        return fh.read(min(cap, 64 << 10)).decode("utf-8", "replace"), size


def _last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


def _rmtree(path: Path) -> None:
    for root, dirs, _ in os.walk(path):  # a program may have chmod'ed its own dirs unreadable
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o700)
    shutil.rmtree(path, ignore_errors=True)


def _token_pipe() -> tuple[int, str]:
    """A pipe's read end holding two random shares; the token they XOR to. The parent keeps its own
    copy of the read end: shares still in it afterwards mean the runner never got to the program."""
    a, b = secrets.token_bytes(child.TOKEN_BYTES), secrets.token_bytes(child.TOKEN_BYTES)
    r, w = os.pipe()
    try:
        os.write(w, a + b)
    finally:
        os.close(w)
    return r, bytes(x ^ y for x, y in zip(a, b)).hex()


def _report(path: Path, token: str) -> tuple[str, str] | None:
    """(verdict, detail) from the report's last line if it carries `token`, else None."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        last = fh.read().decode("utf-8", "replace").rstrip("\n").split("\n")[-1]
    parts = last.split(" ", 2)
    if len(parts) < 2 or parts[0] not in child.VERDICTS:
        return None
    if not hmac.compare_digest(parts[1].encode("utf-8"), token.encode("ascii")):
        return None
    return parts[0], parts[2] if len(parts) > 2 else ""


def _unread(fd: int) -> bool:
    os.set_blocking(fd, False)
    try:
        return bool(os.read(fd, 1))
    except BlockingIOError:
        return False


def run_program(source: str | Program, cfg: SandboxConfig = SandboxConfig()) -> ExecResult:
    """Run `source` (untrusted code, then its tests) under the sandbox; it passes if the tests complete."""
    prog = source if isinstance(source, Program) else Program(source)
    active = layers(cfg)
    workdir = Path(tempfile.mkdtemp(prefix="wb-sandbox-"))
    iodir = Path(tempfile.mkdtemp(prefix="wb-sandbox-io-"))
    token_fd, token = _token_pipe()
    try:
        program = workdir / "program.py"
        program.write_text(prog.source, encoding="utf-8")
        test = iodir / "test.py"  # outside the work dir: the program cannot rewrite it
        if prog.test:
            test.write_text(prog.test, encoding="utf-8")
        report_path = iodir / "report"
        report_fd = os.open(report_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        child_cfg = {"workdir": str(workdir), "program": str(program), "test": str(test) if prog.test else "",
                     "token_fd": token_fd, "report_fd": report_fd, "landlock": "landlock" in active,
                     "seccomp": "seccomp" in active, "prelude": "prelude" in active}
        cmd = [sys.executable, "-I", "-S", str(CHILD), json.dumps(child_cfg)]
        if "namespaces" in active:
            cmd = [shutil.which("unshare") or "unshare", *UNSHARE_ARGS, *cmd]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": str(workdir),
               "TMPDIR": str(workdir)}
        t0 = time.monotonic()
        try:
            with open(iodir / "stdout", "wb") as out, open(iodir / "stderr", "wb") as err:
                proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True, pass_fds=(token_fd, report_fd),
                                        preexec_fn=_limits(cfg, _user_processes() + cfg.nproc_margin))
                try:
                    timed_out = _wait(proc, cfg.timeout_s)
                finally:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)  # every process still in the group, then reap
                    proc.wait()
        finally:
            os.close(report_fd)
        duration = time.monotonic() - t0
        stdout, n_out = _read(iodir / "stdout", cfg.output_bytes)
        stderr, n_err = _read(iodir / "stderr", cfg.output_bytes)
        if not timed_out and _unread(token_fd):
            raise SandboxError(f"the sandbox process ended before running the program (exit status "
                               f"{proc.returncode}): {_last_line(stderr)}")
        result = _classify(proc.returncode, timed_out, max(n_out, n_err) >= cfg.output_bytes,
                           _report(report_path, token), cfg, "namespaces" in active)
        result.duration_s, result.stdout, result.stderr, result.layers = round(duration, 4), stdout, stderr, active
        return result
    finally:
        os.close(token_fd)
        _rmtree(workdir)
        _rmtree(iodir)


def _classify(rc: int, timed_out: bool, output_full: bool, report: tuple[str, str] | None, cfg: SandboxConfig,
              in_ns: bool) -> ExecResult:
    if timed_out:
        return ExecResult("timeout", f"wall-clock limit of {cfg.timeout_s:g} s", rc)
    if output_full:
        return ExecResult("output", f"output or file size limit of {cfg.output_bytes} bytes", rc)
    if report is not None:  # the runner's own word: the token proves it, whatever the exit status
        reason, detail = report
        if reason == "setup":
            raise SandboxError(f"the sandbox could not lock down its process: {detail}")
        if reason == "runtime" and "[Errno 27]" in detail:  # EFBIG: a write past RLIMIT_FSIZE (Python ignores SIGXFSZ)
            return ExecResult("output", detail, rc)
        if reason == "memory":
            detail = f"MemoryError (address-space limit {cfg.memory_mb} MiB)"
        return ExecResult(reason, detail, rc)
    signo = -rc if rc < 0 else (rc - 128 if in_ns and rc > 128 else 0)
    if signo:
        try:
            name = signal.Signals(signo).name
        except ValueError:
            name = f"signal {signo}"
        if signo == signal.SIGXCPU:
            return ExecResult("timeout", "CPU-time limit", rc, name)
        if signo == signal.SIGXFSZ:
            return ExecResult("output", f"file size limit of {cfg.output_bytes} bytes", rc, name)
        return ExecResult("killed", f"killed by {name}", rc, name)
    return ExecResult("early_exit", f"exit status {rc} and no completion report: the program ended the process "
                                    "before its tests returned", rc)


def run_programs(sources: Sequence[str | Program], cfg: SandboxConfig = SandboxConfig(), workers: int = 2) -> list[ExecResult]:
    """Run several programs, `workers` at a time; results in input order."""
    layers(cfg)  # probe once, before threads start
    if workers <= 1 or len(sources) <= 1:
        return [run_program(s, cfg) for s in sources]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda s: run_program(s, cfg), sources))


def describe(cfg: SandboxConfig = SandboxConfig()) -> dict:
    """The layers and limits in force, for run manifests."""
    return {"layers": list(layers(cfg)), "nproc_enforced": nproc_enforced(), "pass_rule": "completion_token",
            **{k: v for k, v in asdict(cfg).items() if k not in ("namespaces", "landlock", "seccomp")}}
