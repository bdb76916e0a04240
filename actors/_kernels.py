"""Kernels on Ray: a task per kernel, or per chunk of a parallel kernel, sized by resources.

Rules:
    1. A kernel runs as a Ray task asking for its capability's ``cpus``
       (:func:`kernel_task`); the task never raises: a failure is the intent's error.
    2. A :class:`~vsm.kernels.ParallelKernel` is split into as many chunks as the
       :class:`~vsm.kernels.TunnelController` (Scribble's resource-aware controller, seed 002)
       sizes from the free cores and memory the :class:`ResourceMonitor` reads; each chunk is
       a task (:func:`chunk_task`), and the results merge back, in grid order, into exactly
       the result of running it whole. One chunk runs as one plain kernel task.
    3. The first wave — as many chunks as there are free cores — goes out at once: those
       cores are free. Any chunk beyond it is dispatched at the controller's dispatch
       frequency (one every ``1/f`` seconds): it falls as the load rises, so a loaded cluster
       is handed work more slowly.
       Every chunk result is recorded in the controller's metrics (successful and failed
       tunnels, average frequency, utilisation histogram).
    4. The monitor reads Ray's cluster and available resources when Ray is initialised, the
       OS (cores, load average, ``/proc/meminfo``) otherwise; a reading is reused for
       ``READ_EVERY`` seconds, since asking the GCS costs a round trip. The runner waits for
       the first reading only: an older one splits the work while a fresh one is read in
       the background, so no intent waits on the GCS.
    5. Stopping: cancelling :meth:`KernelRunner.run` (the host does, on ``StopKernel``)
       cancels the kernel's Ray tasks still running (``ray.cancel``: the task is interrupted,
       its worker kept) and counts them in ``stopped``.
    6. A reading is corrected for the runner's own tasks: the CPUs they held when it was
       taken are added back and those they hold now taken off. A reading taken while the
       last kernel's chunks ran would otherwise show their cores as busy after they finished,
       and the next kernel would run as one chunk on an idle machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Any

import ray
import ray.exceptions

from vsm.kernels import (
    BUILTIN_KERNELS,
    ParallelKernel,
    ResourceMetrics,
    TunnelConfig,
    TunnelController,
    run_kernel,
)
from vsm.kernels._tunnel import MAX_CHUNKS, tunnel_succeeded

__all__ = ["KernelRunner", "ResourceMonitor", "chunk_task", "kernel_task"]

READ_EVERY = 1.0
"""Seconds a resource reading is reused."""


@ray.remote(num_cpus=1)
def kernel_task(name: str, params: Mapping[str, Any]) -> tuple[Any, str | None]:
    """Run a kernel as a Ray task (rule 1); never raises, like :func:`vsm.kernels.run_kernel`."""
    return run_kernel(BUILTIN_KERNELS, name, params)


@ray.remote(num_cpus=1)
def chunk_task(name: str, chunk: Mapping[str, Any]) -> dict[str, Any]:
    """Compute one chunk of the parallel kernel ``name`` (rule 2)."""
    kernel = BUILTIN_KERNELS[name]
    assert isinstance(kernel, ParallelKernel)
    return kernel.run(chunk)


def _meminfo() -> tuple[int, int]:
    """(total, available) bytes from ``/proc/meminfo``; (1, 1) where there is none."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0]) * 1024
    except OSError:
        return 1, 1
    total = fields.get("MemTotal", 1)
    return total, min(total, fields.get("MemAvailable", total))


class ResourceMonitor:
    """Reads free cores and memory (rule 4).

    Args:
        source: ``"ray"``, ``"os"``, or ``"auto"`` (Ray when initialised, else the OS).
    """

    def __init__(self, source: str = "auto") -> None:
        if source not in ("auto", "ray", "os"):
            raise ValueError(f"source must be 'auto', 'ray' or 'os', got {source!r}")
        self.source = source

    def read(self) -> ResourceMetrics:
        """A fresh reading (may block on the GCS: call it off the event loop)."""
        if self.source == "ray" or (self.source == "auto" and ray.is_initialized()):
            return self._from_ray()
        return self._from_os()

    @staticmethod
    def _from_ray() -> ResourceMetrics:
        total = ray.cluster_resources()  # type: ignore[no-untyped-call]  # Ray is untyped
        free = ray.available_resources()  # type: ignore[no-untyped-call]
        cpus = float(total.get("CPU", 1.0))
        memory = int(total.get("memory", 0)) or _meminfo()[0]
        return ResourceMetrics(
            cpus_total=cpus,
            cpus_free=min(cpus, float(free.get("CPU", 0.0))),
            memory_total=memory,
            memory_free=min(memory, int(free.get("memory", memory))),
        )

    @staticmethod
    def _from_os() -> ResourceMetrics:
        cpus = float(os.cpu_count() or 1)
        busy = min(cpus, os.getloadavg()[0])
        total, available = _meminfo()
        return ResourceMetrics(
            cpus_total=cpus, cpus_free=cpus - busy, memory_total=total, memory_free=available
        )


class KernelRunner:
    """Runs kernels for a host as Ray tasks (rules 1-3), one controller per host.

    Args:
        monitor: Where resource readings come from.
        config: The controller's configuration (the seed's defaults).
    """

    def __init__(
        self, monitor: ResourceMonitor | None = None, config: TunnelConfig | None = None
    ) -> None:
        self.monitor = monitor or ResourceMonitor()
        self.controller = TunnelController(config or TunnelConfig())
        self._reading: tuple[float, ResourceMetrics, float] | None = None  # (when, what, held)
        self._held = 0.0  # CPUs this runner's tasks in flight asked for (rule 6)
        self.stopped = 0  # tasks cancelled because their kernel was stopped (rule 5)
        self._refreshing: asyncio.Task[None] | None = None
        self._chunk_tasks: dict[float, Any] = {}  # cpus -> chunk_task with those options

    async def _metrics(self) -> ResourceMetrics:
        """The latest reading, corrected for this runner's own tasks (rules 4 and 6).

        A stale reading starts a fresh read in the background.
        """
        if self._reading is None:
            await self._refresh()
        assert self._reading is not None
        taken, metrics, held = self._reading
        stale = time.monotonic() - taken > READ_EVERY
        if stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        free = min(metrics.cpus_total, max(0.0, metrics.cpus_free + held - self._held))
        return dataclasses.replace(metrics, cpus_free=free)

    async def _refresh(self) -> None:
        held = self._held
        metrics = await asyncio.to_thread(self.monitor.read)
        self._reading = (time.monotonic(), metrics, held)

    def _dispatched(self, cpus: float, ref: Any) -> asyncio.Future[Any]:
        """A task's result, its ``cpus`` counted as held until it arrives (rule 6).

        Cancelling the future cancels the task (rule 5).
        """
        self._held += cpus
        future: asyncio.Future[Any] = asyncio.wrap_future(ref.future())

        def settled(done: asyncio.Future[Any]) -> None:
            self._held -= cpus
            if done.cancelled():  # rule 5
                ray.cancel(ref)
                self.stopped += 1

        future.add_done_callback(settled)
        return future

    async def run(
        self, name: str, params: Mapping[str, Any], cpus: float
    ) -> tuple[Any, str | None]:
        """Run kernel ``name`` on ``params``; ``(result, None)`` or ``(None, error)``."""
        kernel = BUILTIN_KERNELS.get(name)
        try:
            if isinstance(kernel, ParallelKernel):
                return await self._parallel(name, kernel, params, cpus), None
            ref = kernel_task.options(num_cpus=cpus).remote(name, dict(params))
            result, error = await self._dispatched(cpus, ref)
            return result, error
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return None, f"{type(cause).__name__}: {cause}"
        except ray.exceptions.RayError as exc:
            return None, f"the kernel task failed: {type(exc).__name__}: {exc}"
        except Exception as exc:  # a bad split or merge fails the intent, with the reason
            return None, f"{type(exc).__name__}: {exc}"

    async def _parallel(
        self, name: str, kernel: ParallelKernel, params: Mapping[str, Any], cpus: float
    ) -> Any:
        metrics = await self._metrics()
        frequency = self.controller.observe(metrics)
        chunks = kernel.split(params, self.controller.chunk_count(MAX_CHUNKS, metrics))
        task = self._chunk_tasks.get(cpus)
        if task is None:
            task = self._chunk_tasks[cpus] = chunk_task.options(num_cpus=cpus)
        wave = max(1, int(metrics.cpus_free))  # rule 3: these find a free core at once
        refs: list[asyncio.Future[Any]] = []
        try:
            for k, chunk in enumerate(chunks):
                if k >= wave:
                    await asyncio.sleep(1.0 / frequency)  # rule 3: paced beyond the free cores
                refs.append(self._dispatched(cpus, task.remote(name, chunk)))
            results = list(await asyncio.gather(*refs))
        except BaseException:  # stopped (rule 5), or a chunk failed: the rest is not wanted
            for ref in refs:
                ref.cancel()
            raise
        for result in results:  # the tunnels among them (rule 3)
            if "transmission" in result:
                self.controller.record(tunnel_succeeded(result), frequency, metrics.cpu_load)
        return kernel.merge(params, results)
