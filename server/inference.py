"""Inference off the event loop: bounded queues per cost class, worker threads, batching and preemption.

Generation is autoregressive and CPU/GPU bound, so it never runs on the event loop: requests become `Job`s in a
bounded queue (full: `QueueFull`, which the routes answer with 503) and worker threads take them. Jobs are
queued by cost class (`COST_CLASSES`): a student's one parallel pass, a teacher's fast autoregressive loop, and
the naive reference, hundreds of times slower. Each class has its own queue and workers, and a running job
pauses at its next progress report while a cheaper class has work, so a slow job never holds a fast one back.
A worker that finds several compatible jobs waiting (same model, method and sampling) runs them as one padded
batch with `Vocoder.synthesize_batch`: a step costs little more for 8 rows than for 1. There is no waiting for a
batch to fill: batches form only from requests that queued while the workers were busy, so an idle service adds
no latency. A request that gives up (timeout, client gone) is dropped from the queue, and a running batch whose
requests have all given up stops at its next progress report. When the service shuts down, queued jobs and
running ones (at their next progress report) end with `ShuttingDown`, which the routes answer with 503.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from vocoder.api import Vocoder
from vocoder.features.featurefile import Features
from vocoder.generate import Sampling
from vocoder.vocabulary import Method
from vocoder_server.metrics import Metrics

log = logging.getLogger("server")

MAX_PADDING_RATIO = 2.0
"""A job joins a batch only if the lengths differ by at most this factor: padding is generated work thrown away."""

StreamItem = np.ndarray | BaseException | None  # a chunk, the error that ended the stream, or the end


class QueueFull(Exception):
    """Every queue slot is taken; the client should retry later."""


class ShuttingDown(Exception):
    """The engine has stopped: a queued job is dropped, a running one stops at its next progress report, and new
    work is refused; the client should retry (elsewhere, if another instance serves)."""


class _Abandoned(Exception):
    """Raised from the progress callback to stop a batch nobody waits for any more."""


@dataclass(eq=False)
class Job:
    """One utterance to generate; `features` are validated and carry the speaker to use."""

    model: Vocoder
    features: Features
    method: Method
    sampling: Sampling
    future: Future[np.ndarray | None] = field(default_factory=Future)
    emit: Callable[[StreamItem], None] | None = None  # set for streamed jobs: receives chunks as they are made
    chunk_samples: int = 1024
    abandoned: bool = False

    @property
    def batch_key(self) -> Hashable | None:
        """Jobs with equal keys may share a batch. A seeded `sample` runs alone: its draws depend on its row in
        the batch, and the seed must reproduce what the CLI generates for that file (row 0)."""
        if self.emit is not None or (self.sampling.seed is not None and self.sampling.strategy == "sample"):
            return None
        return (self.model.name, self.method, self.sampling)

    def fits_with(self, first: Job) -> bool:
        key = first.batch_key
        if key is None or self.batch_key != key:
            return False
        longer, shorter = sorted((self.features.n_samples, first.features.n_samples), reverse=True)
        return longer <= MAX_PADDING_RATIO * shorter


COST_CLASSES: dict[Method, str] = {
    "student": "parallel",
    "fast": "autoregressive",
    "fast-torch": "autoregressive",
    "naive": "reference",
}
"""The cost class of each method, cheapest first: one per queue, and each pauses while a cheaper one has work."""
REFERENCE_QUEUE = 2
"""Naive jobs that may wait: each holds its worker for minutes, so a longer queue would only end in timeouts."""
PAUSE_SECONDS = 0.005
"""How often a paused job looks whether the cheaper classes are done (or its own requests gave up)."""


class Lane:
    """One cost class: its bounded queue and worker threads. Its jobs pause while a `cheaper` lane is busy."""

    def __init__(
        self, name: str, metrics: Metrics, workers: int, max_queue: int, max_batch: int, cheaper: list[Lane]
    ) -> None:
        self.name, self.metrics, self.max_queue, self.max_batch = name, metrics, max_queue, max_batch
        self.cheaper = cheaper
        self._pending: deque[Job] = deque()
        self._running: set[Job] = set()
        self._condition = threading.Condition()
        self._closed = False
        self.workers = workers
        self._threads: list[threading.Thread] = []
        self._on_depth: Callable[[], None] = lambda: None

    def start(self, on_depth: Callable[[], None]) -> None:
        self._on_depth = on_depth
        self._threads = [
            threading.Thread(target=self._work, name=f"inference-{self.name}-{index}", daemon=True)
            for index in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Refuse new work, end what waits with `ShuttingDown` and ask running batches to stop (with it too)."""
        with self._condition:
            self._closed = True
            for job in self._pending:
                if not job.future.done():
                    job.future.set_exception(ShuttingDown())
            self._pending.clear()
            for job in self._running:
                job.abandoned = True
            self._condition.notify_all()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        """Jobs wait or run here (read without the lock: a stale answer only delays a pause by one look)."""
        return bool(self._pending or self._running)

    def submit(self, job: Job) -> None:
        with self._condition:
            if self._closed:
                raise ShuttingDown
            if len(self._pending) >= self.max_queue:
                raise QueueFull
            self._pending.append(job)
            self._condition.notify()
        self._on_depth()
        job.future.add_done_callback(self._forget)

    def _forget(self, future: Future[np.ndarray | None]) -> None:
        """A job cancelled while queued leaves the queue at once, so it no longer counts against the bound."""
        if not future.cancelled():
            return
        with self._condition:
            for job in self._pending:
                if job.future is future:
                    self._pending.remove(job)
                    break
        self._on_depth()

    def _next_batch(self) -> list[Job] | None:
        """Block for the oldest live job, then take the compatible jobs queued behind it (None: shut down)."""
        with self._condition:
            while True:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return None
                first = self._pending.popleft()
                if first.future.set_running_or_notify_cancel():
                    break
            batch = [first]
            for job in list(self._pending):
                if len(batch) >= self.max_batch:
                    break
                if job.fits_with(first) and job.future.set_running_or_notify_cancel():
                    self._pending.remove(job)
                    batch.append(job)
            self._running.update(batch)
        self._on_depth()
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                if batch[0].emit is not None:
                    self._stream(batch[0])
                else:
                    self._generate(batch)
            finally:
                with self._condition:
                    self._running.difference_update(batch)

    def _checkpoint(self, batch: list[Job]) -> None:
        """Between two chunks: stop if the service is shutting down or nobody waits any more, pause while a
        cheaper lane has work."""
        while True:
            if self._closed:
                raise ShuttingDown
            if all(job.abandoned for job in batch):
                raise _Abandoned
            if not any(lane.busy for lane in self.cheaper):
                return
            time.sleep(PAUSE_SECONDS)

    def _generate(self, batch: list[Job]) -> None:
        first = batch[0]
        self.metrics.batch_size.observe(len(batch))
        try:
            self._checkpoint(batch)
            features = [job.features for job in batch]
            waveforms = first.model.synthesize_batch(
                features, first.method, first.sampling, progress=lambda _: self._checkpoint(batch)
            )
        except Exception as error:  # delivered to each request, which maps it to a response
            for job in batch:
                job.future.set_exception(error)
            return
        for job, waveform in zip(batch, waveforms, strict=True):
            self.metrics.audio_seconds.labels(first.model.name).inc(len(waveform) / first.model.sample_rate)
            job.future.set_result(waveform)

    def _stream(self, job: Job) -> None:
        assert job.emit is not None
        samples = 0
        self.metrics.batch_size.observe(1)
        try:
            chunks = job.model.synthesize_stream(job.features, job.sampling, chunk_samples=job.chunk_samples)
            for chunk in chunks:
                try:
                    self._checkpoint([job])
                except _Abandoned:
                    chunks.close()
                    break
                samples += len(chunk)
                job.emit(chunk)
            job.emit(None)
            job.future.set_result(None)
        except Exception as error:
            job.future.set_exception(error)
            try:
                job.emit(error)
            except RuntimeError:  # the event loop is gone: nobody listens
                log.debug("stream of %s ended after shutdown", job.model.name)
        finally:
            self.metrics.audio_seconds.labels(job.model.name).inc(samples / job.model.sample_rate)


class InferenceEngine:
    """A lane per cost class, cheapest first; `run` and `open_stream` are the event loop's side."""

    def __init__(self, metrics: Metrics, workers: int = 1, max_queue: int = 32, max_batch: int = 8) -> None:
        self.metrics = metrics
        self.lanes: dict[str, Lane] = {}
        for name in dict.fromkeys(COST_CLASSES.values()):
            reference = name == COST_CLASSES["naive"]
            self.lanes[name] = Lane(
                name,
                metrics,
                workers=1 if reference else workers,
                max_queue=REFERENCE_QUEUE if reference else max_queue,
                max_batch=max_batch,
                cheaper=list(self.lanes.values()),
            )

    def start(self) -> None:
        for lane in self.lanes.values():
            lane.start(self._report_depth)

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new work, end what waits, ask running batches to stop, and wait for the threads (idempotent)."""
        for lane in self.lanes.values():
            lane.close()
        for lane in self.lanes.values():
            lane.join(timeout)

    @property
    def depth(self) -> int:
        return sum(lane.depth for lane in self.lanes.values())

    def _report_depth(self) -> None:
        self.metrics.queue_depth.set(self.depth)

    @property
    def busy(self) -> bool:
        """Jobs wait or run in some lane."""
        return any(lane.busy for lane in self.lanes.values())

    @property
    def stopped(self) -> bool:
        return any(lane.closed for lane in self.lanes.values())

    def submit(self, job: Job) -> None:
        """Queue `job` in its cost class; `QueueFull` when that queue is full, `ShuttingDown` once stopped."""
        self.lanes[COST_CLASSES[job.method]].submit(job)

    async def run(self, job: Job, timeout: float) -> np.ndarray:
        """Queue a job and wait for its waveform; `TimeoutError` after `timeout` seconds (the job is dropped)."""
        self.submit(job)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(job.future), timeout)
        except BaseException:
            job.abandoned = True  # cancelling the wrapper cancelled a queued job; a running one stops early
            raise
        assert result is not None
        return result

    def open_stream(self, job: Job) -> ChunkStream:
        """Queue a streamed job; its chunks arrive through the returned `ChunkStream`."""
        stream = ChunkStream(job, asyncio.get_running_loop())
        self.submit(job)
        return stream


class ChunkStream:
    """The event loop's end of a streamed job: chunks are handed over thread-safely as they are generated."""

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self._chunks: asyncio.Queue[StreamItem] = asyncio.Queue()
        job.emit = lambda item: loop.call_soon_threadsafe(self._chunks.put_nowait, item)

    async def next(self, timeout: float | None = None) -> np.ndarray | None:
        """The next chunk, None at the end; re-raises the generation's error; `TimeoutError` after `timeout`."""
        item = await asyncio.wait_for(self._chunks.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """The client is gone or gave up: drop the job if queued, stop it at its next chunk if running."""
        self.job.abandoned = True
        self.job.future.cancel()
