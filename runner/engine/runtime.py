"""Process set-up for the processes that train: TensorFlow's thread pools and
logs, and a watchdog that stops a worker whose parent died."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from typing import Any

from remedysweep.files import quiet_stderr

_THREADS_SET = False
#: The environment variable naming the folder where local workers keep their
#: progress files (set by the coordinator of ``remedysweep run``).
PROGRESS_ENV = "REMEDYSWEEP_PROGRESS_DIR"


def configure_tensorflow(intra_op_threads: int | None = None) -> Any:
    """Import TensorFlow quietly, size its thread pools (before its first op) and
    silence its Python logs. Returns the module."""
    global _THREADS_SET
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow as tf
    if intra_op_threads and not _THREADS_SET:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op_threads))
            tf.config.threading.set_inter_op_parallelism_threads(1 if intra_op_threads <= 2 else 2)
        except RuntimeError:
            pass  # TensorFlow already initialised in this process: keep its pools
    _THREADS_SET = True
    tf.get_logger().setLevel("ERROR")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", module="keras")
    return tf


def threads_per_worker(workers: int) -> int:
    """TensorFlow's intra-op threads for each of ``workers`` processes: the cores
    this process may use, shared out, and never more than TensorFlow's own
    ``TF_NUM_INTRAOP_THREADS`` when that is set (the way to share a machine)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    share = max(1, cores // max(1, workers))
    cap = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    return min(share, int(cap)) if cap.isdigit() and int(cap) > 0 else share


ORPHANED = threading.Event()
#: Seconds an orphaned worker has to release its runs before it ends itself.
ORPHAN_GRACE = 20.0


def watch_parent(interval: float = 1.0) -> None:
    """In a worker process: if the process that started it dies (killed with
    SIGKILL, say), interrupt this one, so that it releases its runs and exits
    instead of training on as an orphan; if it is still there after
    :data:`ORPHAN_GRACE` seconds (stuck in a long native call), it ends itself."""
    parent = os.getppid()

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if os.getppid() != parent:
                ORPHANED.set()
                _thread.interrupt_main()
                stop.wait(ORPHAN_GRACE)
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="remedysweep-parent-watch").start()


def interrupt_once() -> None:
    """The first SIGINT interrupts this process; later ones (a Ctrl-C reaching
    the whole process group, then the same signal passed on by the coordinator)
    are ignored, so that releasing the runs is not itself interrupted.

    An interrupt that lands where Python cannot raise it (a finalizer, a
    callback inside TensorFlow) is not printed as "Exception ignored" with a
    traceback: it is raised again in the main thread at the next chance."""
    state = {"seen": False}

    def handler(signum: int, frame: Any) -> None:
        if not state["seen"]:
            state["seen"] = True
            raise KeyboardInterrupt

    previous = sys.unraisablehook

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):
            # Raised again from another thread a moment later: interrupting
            # from here would run the handler inside this hook, where the
            # KeyboardInterrupt is again unraisable and printed.
            state["seen"] = False
            again = threading.Timer(0.05, _thread.interrupt_main)
            again.daemon = True
            again.start()
            return
        previous(info)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        sys.unraisablehook = unraisable
