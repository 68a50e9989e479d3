"""`serve`: an HTTP service for similarity, classification, embeddings and entities (FastAPI + uvicorn).

A classifier directory answers /similarity, /classify and /embed; an entity tagger's (a token
classifier) answers /ner. Either way the other routes say which routes the model has.

Requests from all clients go through one queue; a batching task takes what has arrived while the
model was busy (up to `max_batch` texts; a lone request waits at most `max_wait_ms` for company)
and runs it through the model as one batch in a worker thread. Limits (texts per request, characters per text, body bytes) are
checked before any model work; oversize bodies are refused while they are being received.
The model is loaded before the server starts, so a missing or broken folder fails at start-up.
"""

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np

from albert_zh.backends import require_extra
from albert_zh.inference import Classifier, EntityRecognizer, load_model, softmax

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "torch"
    max_batch: int = 64  # texts per model call, gathered across requests
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_items: int = 256  # texts or pairs per request
    max_chars: int = 1000  # characters per text
    max_body_bytes: int = 1 << 20
    max_seq_length: int = 128
    threads: int | None = None

    def __post_init__(self):
        for name in ("max_batch", "max_items", "max_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_wait_ms < 0:
            raise ValueError("--max-wait-ms must not be negative")


class MicroBatcher:
    """Gathers (output, inputs) jobs from concurrent requests into model calls of <= max_batch inputs."""

    def __init__(self, classifier: Classifier | EntityRecognizer, max_batch: int, max_wait_ms: float):
        self.classifier, self.max_batch, self.max_wait = classifier, max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.model_calls = 0

    async def submit(self, output: str, inputs: list) -> np.ndarray | list:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((output, inputs, future))
        return await future

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0][1])
            # what arrived while the model was busy forms the batch at once; only a request that
            # finds the model idle and the queue empty waits (up to max_wait) for company
            while size < self.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
                size += len(jobs[-1][1])
            deadline = loop.time() + self.max_wait
            while len(jobs) == 1 and size < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    jobs.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
                size += len(jobs[-1][1])
            for output in {job[0] for job in jobs}:
                group = [job for job in jobs if job[0] == output]
                inputs = [x for _, job_inputs, _ in group for x in job_inputs]
                try:
                    values = await loop.run_in_executor(self.executor, self.classifier.run, inputs, output)
                    self.model_calls += 1
                except Exception as e:  # the requests in this batch fail; the service goes on
                    log.exception("model call failed")
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(e)
                    continue
                start = 0
                for _, job_inputs, future in group:
                    if not future.done():
                        future.set_result(values[start:start + len(job_inputs)])
                    start += len(job_inputs)


class BodyLimit:
    """ASGI middleware: refuse a body over max_bytes with 413 by its Content-Length, or while it
    streams in, before the application reads it into memory."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send_json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
        received, refused = 0, False

        async def limited_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not refused:
                    refused = True
                    await _send_json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


class JsonBody:
    """ASGI middleware: every request body is read as JSON, whatever content type it declares.
    `curl -d` declares a form, and FastAPI would refuse the JSON in it with 422; a body that is not
    JSON is still refused (422)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": headers + [(b"content-type", b"application/json")]}
        return await self.app(scope, receive, send)


async def _send_json(send, status: int, body: dict):
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(classifier: Classifier | EntityRecognizer, config: ServeConfig) -> "FastAPI":  # noqa: F821
    # imported here, not at the top: the CLI reads ServeConfig's defaults without the deploy extra
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel, ConfigDict, Field

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class TextsRequest(Strict):
        texts: list[str] = Field(min_length=1)

    class PairsRequest(Strict):
        pairs: list[tuple[str, str]] = Field(min_length=1)

    class ClassifyRequest(Strict):
        texts: list[str] | None = None
        pairs: list[tuple[str, str]] | None = None

    batcher = MicroBatcher(classifier, config.max_batch, config.max_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.executor.shutdown(wait=False)

    app = FastAPI(title="albert_zh", description="Chinese ALBERT: similarity, classification, embeddings",
                  lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(JsonBody)

    def check(items: list) -> list:
        if len(items) > config.max_items:
            raise HTTPException(413, f"{len(items)} items in one request; the limit is {config.max_items}")
        for i, item in enumerate(items):
            for text in (item,) if isinstance(item, str) else item:
                if not text.strip():
                    raise HTTPException(422, f"item {i}: empty text")
                if len(text) > config.max_chars:
                    raise HTTPException(413, f"item {i}: {len(text)} characters; the limit is {config.max_chars}")
        return items

    tagger = isinstance(classifier, EntityRecognizer)

    def needs_labels():
        needs_classifier()
        if classifier.labels is None:
            raise HTTPException(400, "this model has no classifier head; only /embed is available")

    def needs_classifier():
        if tagger:
            raise HTTPException(400, "this model tags entities; only /ner is available")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": config.model, "backend": config.backend,
                **({"entity_types": classifier.types} if tagger else {"labels": classifier.labels}),
                "max_batch": config.max_batch, "model_calls": batcher.model_calls}

    @app.post("/similarity")
    async def similarity(request: PairsRequest):
        needs_labels()
        if "1" not in classifier.labels:
            raise HTTPException(400, f"not a similarity model (labels {classifier.labels}); use /classify")
        logits = await batcher.submit("logits", check(request.pairs))
        return {"scores": softmax(logits)[:, classifier.labels.index("1")].tolist()}

    @app.post("/classify")
    async def classify(request: ClassifyRequest):
        needs_labels()
        if (request.texts is None) == (request.pairs is None):
            raise HTTPException(422, 'give exactly one of "texts" or "pairs"')
        items = check(request.texts if request.texts is not None else request.pairs)
        if not items:
            raise HTTPException(422, "empty list")
        probabilities = softmax(await batcher.submit("logits", items))
        return {"results": [{"label": classifier.labels[int(p.argmax())],
                             "probabilities": dict(zip(classifier.labels, p.tolist(), strict=True))}
                            for p in probabilities]}

    @app.post("/embed")
    async def embed(request: TextsRequest):
        needs_classifier()
        vectors = await batcher.submit("pooled_output", check(request.texts))
        return {"embeddings": vectors.tolist()}

    @app.post("/ner")
    async def ner(request: TextsRequest):
        if not tagger:
            raise HTTPException(400, "this model is not an entity tagger; use /classify, /similarity or /embed")
        return {"entities": await batcher.submit("entities", check(request.texts))}

    return app


def serve(config: ServeConfig):
    require_extra("deploy", "fastapi", "uvicorn")  # before the model is loaded
    import uvicorn

    classifier = load_model(config.model, backend=config.backend, max_seq_length=config.max_seq_length,
                            batch_size=config.max_batch, threads=config.threads,
                            busy_wait=False)  # the HTTP work needs the cores between model calls
    app = create_app(classifier, config)
    log.info("serving %s (%s, %s backend) on http://%s:%d (docs at /docs)",
             config.model, type(classifier).__name__, config.backend, config.host, config.port)
    uvicorn.run(BodyLimit(app, config.max_body_bytes), host=config.host, port=config.port, log_level="warning")
