"""Inference off the event loop: a bounded queue of requests, worker threads, and batching.

Generation is autoregressive and CPU/GPU bound, so it never runs on the event loop: requests become `Job`s in a
bounded queue (full: `QueueFull`, which the routes answer with 503) and worker threads take them. A worker that
finds several compatible jobs waiting (same model, method and sampling) runs them as one padded batch with
`Vocoder.synthesize_batch`: a step costs little more for 8 rows than for 1. There is no waiting for a batch to
fill: batches form only from requests that queued while the workers were busy, so an idle service adds no
latency. A request that gives up (timeout, client gone) is dropped from the queue, and a running batch whose
requests have all given up stops at its next progress report.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from server.metrics import Metrics
from vocoder.api import Method, Vocoder
from vocoder.features.featurefile import Features
from vocoder.generate import Sampling

log = logging.getLogger("server")

MAX_PADDING_RATIO = 2.0
"""A job joins a batch only if the lengths differ by at most this factor: padding is generated work thrown away."""

StreamItem = np.ndarray | BaseException | None  # a chunk, the error that ended the stream, or the end


class QueueFull(Exception):
    """Every queue slot is taken; the client should retry later."""


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
        """Jobs with equal keys may share a batch. A seeded `sample` runs alone: its draws depend on the batch
        size and padded length, and the seed must reproduce what the CLI generates for that file."""
        if self.emit is not None or (self.sampling.seed is not None and self.sampling.strategy == "sample"):
            return None
        return (self.model.name, self.method, self.sampling)

    def fits_with(self, first: Job) -> bool:
        key = first.batch_key
        if key is None or self.batch_key != key:
            return False
        longer, shorter = sorted((self.features.n_samples, first.features.n_samples), reverse=True)
        return longer <= MAX_PADDING_RATIO * shorter


class InferenceEngine:
    """The queue and its worker threads; `run` and `open_stream` are the event loop's side."""

    def __init__(self, metrics: Metrics, workers: int = 1, max_queue: int = 32, max_batch: int = 8) -> None:
        self.metrics, self.max_queue, self.max_batch = metrics, max_queue, max_batch
        self._pending: deque[Job] = deque()
        self._running: set[Job] = set()
        self._condition = threading.Condition()
        self._closed = False
        self.workers = workers
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._work, name=f"inference-{index}", daemon=True) for index in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new work, drop what waits, ask running batches to stop, and wait for the threads."""
        with self._condition:
            self._closed = True
            for job in list(self._pending):  # cancelling runs `_forget`, which edits the queue
                job.future.cancel()
            self._pending.clear()
            for job in self._running:
                job.abandoned = True
            self._condition.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    @property
    def depth(self) -> int:
        return len(self._pending)

    def submit(self, job: Job) -> None:
        with self._condition:
            if self._closed or len(self._pending) >= self.max_queue:
                raise QueueFull
            self._pending.append(job)
            self.metrics.queue_depth.set(len(self._pending))
            self._condition.notify()
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
            self.metrics.queue_depth.set(len(self._pending))

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
            self.metrics.queue_depth.set(len(self._pending))
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

    def _generate(self, batch: list[Job]) -> None:
        first = batch[0]

        def check(_: int) -> None:
            if all(job.abandoned for job in batch):
                raise _Abandoned

        self.metrics.batch_size.observe(len(batch))
        try:
            waveforms = first.model.synthesize_batch(
                [job.features for job in batch], first.method, first.sampling, progress=check
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
                if job.abandoned:
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
