"""The one sandbox of the project: run untrusted, model-written Python in isolation.

Two ways in, one mechanism underneath:

(a) Snippets with fresh state (MathCode-Pile verification)::

        from mathcode_pile.sandbox import SandboxLimits, SandboxPool

        with SandboxPool(workers=4, limits=SandboxLimits(timeout_s=5)) as pool:
            result = pool.run("from fractions import Fraction\\nprint(Fraction(3, 4))")
            result.status, result.stdout          # ('ok', '3/4\\n')
            results = pool.run_many(snippets)     # every worker busy, results in input order
            result = await pool.arun(code)        # from asyncio

(b) A stateful session per problem (MathCoder LCE inference)::

        from mathcode_pile.sandbox import PythonSession

        with PythonSession(limits=SandboxLimits(timeout_s=10)) as session:   # or PythonSession(pool=pool)
            session.run_cell("import sympy as sp\\nx = sp.Symbol('x')")
            session.run_cell("sp.solve(x**2 - 4, x)").stdout                 # '[-2, 2]\\n'

Every call returns an :class:`ExecResult` ``(status, stdout, stderr, exit_code, reason, duration_s, truncated)``;
``status`` is one of ``ok, error, timeout, memory_limit, output_limit, killed, sandbox_error``. Nothing the code does
raises in the caller.

How it works
------------
A :class:`SandboxPool` starts ``workers`` processes (``python -m mathcode_pile.sandbox.worker``) with a scrubbed
environment. Each worker sets up its isolation once, imports the math stack once (sympy, numpy, scipy, fractions,
math, ...; see ``DEFAULT_PRELOAD``), runs a warm-up of common sympy calls (``DEFAULT_WARMUP``), checks with one
sandboxed run that the preloaded packages are readable from inside (else the pool refuses to start and says why),
and then, per snippet, forks a child. The child starts from the worker's pre-warmed state, shared copy-on-write, so
``import sympy`` costs nothing and no state survives a run. A session is such a child kept alive between cells.

Threat model
------------
The code is untrusted: written by a model, possibly steered by its input, run by the million on a user's machine or
cluster. It may try anything a Python program can, including ``ctypes``, patching this package's modules, and
native code. Every boundary below is enforced by the kernel; the audit hook of :mod:`.guard` only turns the common
mistakes into early, readable errors (``SandboxViolationError``), and nothing depends on it: the attack tests switch
it off first.

Layers, applied to every run (the ``process`` mode lacks only the first):

- **Namespaces** (``namespaces`` mode; root, or a container with ``CAP_SYS_ADMIN``): each worker has its own network
  namespace (no interface up: no network at all, 127.0.0.1 and abstract Unix sockets of the host included), PID
  namespace (a run sees and can signal only the worker's runs; when the worker dies, everything in it dies), IPC
  namespace (SysV segments die with the worker) and mount namespace (its own ``/proc``, fresh size-capped tmpfs over
  ``/tmp``, ``/var/tmp``, ``/dev/shm`` that only root may write, with the interpreter, venv and project bound back
  read-only when they live there, e.g. a CI clone under ``/tmp``). Each run gets a user id of its own, unique across
  the pool's workers: it cannot write the host's files or signal other processes, and ``RLIMIT_NPROC`` counts
  exactly its processes. Each
  run also gets a mount namespace of its own with fresh ``/tmp`` (``tmpfs_mb``), ``/var/tmp`` and ``/dev/shm`` (64
  MB each), which hold its working folder and vanish with its last process.
- **Landlock** (:mod:`.kernel`; Linux >= 5.13): the run may read the interpreter, its packages, this project and a
  few system paths (``/usr``, ``/lib*``, the loader cache, ``/etc/ssl``...), and write only its own working folder
  (and, in ``namespaces`` mode, its own fresh ``/tmp``, ``/var/tmp``, ``/dev/shm``): no ``dir_fd``, ``sqlite3``,
  ``bind()`` or ``shm_open`` write lands anywhere else, and nothing of a run survives it (its folder is removed).
  Its output files live elsewhere (their own tmpfs in ``namespaces`` mode), so a run that fills its folder cannot
  break its own output or the next run's. On the host's ``/proc`` (``process`` mode) a run
  may list entries and read a few global files, not another process's ``environ`` or ``cmdline``. With ABI >= 4 TCP
  bind / connect are refused; with ABI >= 6 abstract Unix sockets and signals are scoped to the run.
- **seccomp** (:mod:`.kernel`, ``pyseccomp`` over libseccomp2): no SysV IPC, ``ptrace`` / ``process_vm_*``, new
  namespaces (``unshare``, ``setns``, ``clone`` with namespace flags), mounts, keyrings, ``bpf``,
  ``perf_event_open``, ``userfaultfd``, ``io_uring``, ``execve`` (no shell, no other program), and no socket but
  ``AF_UNIX``. As root without namespaces (``process`` mode), where no kernel counter bounds processes, no process
  can be created at all (threads can).
- **Resource limits**: ``RLIMIT_CPU``, ``RLIMIT_AS`` (``memory_mb`` on top of the preloaded state) per process,
  plus the worker's own check that a run's processes *together* stay within ``memory_mb`` (four forked hogs are
  killed as ``memory_limit``); ``RLIMIT_FSIZE`` per output file, ``RLIMIT_NOFILE``, ``RLIMIT_NPROC``, no core dumps,
  a scrubbed environment (no ``HF_TOKEN``), ``no_new_privs``, ``PR_SET_PDEATHSIG``.
- **The worker's own observations decide the status**: its timer (``timeout``), the signal that ended the run
  (``killed``, CPU ``timeout``) and the exit status: a run is ``ok`` only if it exited 0, whatever frame it wrote
  on its status pipe (that frame only names the error). The worker is a child subreaper and kills whatever a run
  left behind, ``setsid`` or not; numpy and ``random`` are reseeded per run.
- **Infrastructure failures are not verdicts**: a dead worker (replaced), a full scratch space (``ENOSPC``, and
  the worker is replaced before its next run) or a pool that cannot start give ``sandbox_error`` or an exception,
  which the verification cache never stores.

Sessions (LCE / TIR inference): each session is its own process with its own pipes; when a cell returns, every
process it started is killed; writes to a session have a deadline, so a session that stops reading is restarted
instead of blocking its worker; frames a cell wrote itself are discarded before the next cell. A cell's status is
the session interpreter's own account (its process lives on), so a cell can misreport itself; that fools only the
model that wrote it. Timeouts come from the worker's timer.

Modes: ``auto`` (default) picks ``namespaces`` where it can, else ``process`` (Landlock + seccomp + limits). Where
neither is possible (no root and a kernel without Landlock) the pool refuses to start with a
:class:`KernelLayerError` that says why. ``isolation="unsafe-hook-only"`` runs without any kernel layer; it exists for
trusted code on such kernels and must be asked for by that name.

Why ``ctypes`` for Landlock and ``pyseccomp`` for seccomp: see :mod:`.kernel` (the ``landlock`` package on PyPI is a
development release stuck at ABI 1; libseccomp's own Python binding is not on PyPI; bubblewrap would mean a second
process and an ``exec`` per worker plus a system package, for what the kernel offers directly).

Out of scope
------------
- Kernel exploits: this is process isolation (namespaces, Landlock, seccomp), not a virtual machine or gVisor.
- Output-only verification: a snippet that prints the stated constant is "verified"; checking that the code
  computes it is the verifier's job, not the sandbox's.
- Reading: the interpreter, the venv, the project and the allowed system paths are readable by every run.
- Resource use within the limits, page cache and tmpfs use counting towards the host's memory, timing and side
  channels; in ``process`` mode the run folder lies on the host's temporary filesystem and is capped per file
  (``RLIMIT_FSIZE``), not in total, and ``RLIMIT_NPROC`` is shared with the user's other processes.
- Landlock ABI < 6 (Linux < 6.12): in ``process`` mode abstract Unix sockets of the host (some desktop and container
  services listen on them) stay reachable, and signals are bounded by user id only.
- The per-run memory sum is sampled (every 50 ms), so a burst shorter than that can pass; each process stays
  within ``RLIMIT_AS`` regardless.

Running it: as root with ``CAP_SYS_ADMIN`` (a VM, CI, a privileged container), ``auto`` gives ``namespaces``. In a
default Docker container ``unshare`` is refused, so ``auto`` gives ``process`` (Landlock + seccomp), which needs a
kernel with Landlock and a container seccomp profile that lets the three Landlock calls through (recent Docker
releases do; otherwise ``--security-opt seccomp=unconfined``, or ``--cap-add SYS_ADMIN`` for ``namespaces``). Without
root, ``process`` needs only a kernel with Landlock (Linux >= 5.13 with ``landlock`` in ``/sys/kernel/security/lsm``
or the ``lsm=`` boot parameter). The pool's ``worker_info().detail`` says which layers a worker runs with.
"""

from mathcode_pile.sandbox.kernel import KernelLayerError
from mathcode_pile.sandbox.limits import DEFAULT_PRELOAD, DEFAULT_WARMUP, SandboxLimits
from mathcode_pile.sandbox.pool import SandboxError, SandboxPool, WorkerInfo
from mathcode_pile.sandbox.result import EXEC_STATUSES, ExecResult, ExecStatus
from mathcode_pile.sandbox.session import PythonSession

__all__ = [
    "DEFAULT_PRELOAD",
    "DEFAULT_WARMUP",
    "EXEC_STATUSES",
    "ExecResult",
    "ExecStatus",
    "KernelLayerError",
    "PythonSession",
    "SandboxError",
    "SandboxLimits",
    "SandboxPool",
    "WorkerInfo",
]
