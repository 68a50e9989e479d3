"""The HTTP service: answers equal the Python API, requests are micro-batched, bad input gets a
4xx with a JSON body and the service keeps serving, a broken model fails at start-up."""

import asyncio
import json
import sys

import httpx
import numpy as np
import pytest
from deploy_fixtures import PAIRS, TEXTS, save_classifier, save_tagger
from fastapi.testclient import TestClient

from albert_zh.cli import main
from albert_zh.inference import EntityRecognizer, SentenceSimilarity
from albert_zh.serve import BodyLimit, ServeConfig, create_app


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("serve") / "classifier")


def make_app(model_dir, **limits):
    config = ServeConfig(model=str(model_dir), **{"max_items": 50, "max_chars": 200, "max_body_bytes": 50_000, **limits})
    return BodyLimit(create_app(SentenceSimilarity.load(model_dir), config), config.max_body_bytes)


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(make_app(model_dir)) as c:
        yield c


def test_answers_equal_the_python_api(client, model_dir):
    expected = SentenceSimilarity.load(model_dir).predict(PAIRS)
    scores = client.post("/similarity", json={"pairs": PAIRS}).json()["scores"]
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    results = client.post("/classify", json={"pairs": PAIRS}).json()["results"]
    np.testing.assert_allclose([r["probabilities"]["1"] for r in results], expected, atol=1e-6)
    embeddings = client.post("/embed", json={"texts": ["你好", "世界"]}).json()["embeddings"]
    assert np.array(embeddings).shape == (2, 128)
    assert client.get("/health").json()["labels"] == ["0", "1"]
    assert "/similarity" in client.get("/openapi.json").json()["paths"]


def test_concurrent_requests_are_batched_together(model_dir):
    async def scenario():
        app = make_app(model_dir, max_wait_ms=200)
        inner = app.app
        async with inner.router.lifespan_context(inner):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                responses = await asyncio.gather(*(c.post("/similarity", json={"pairs": [pair]}) for pair in PAIRS * 4))
            return [r.json()["scores"][0] for r in responses], inner.state.batcher.model_calls

    scores, calls = asyncio.run(scenario())
    expected = SentenceSimilarity.load(model_dir).predict(PAIRS * 4)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert calls < len(expected) / 2, calls  # 16 requests, a 200 ms window: a few model calls


BAD = {
    "malformed JSON": b'{"pairs": [["a", "b"]',
    "wrong types": b'{"pairs": "a b"}',
    "pair of three": b'{"pairs": [["a", "b", "c"]]}',
    "empty list": b'{"pairs": []}',
    "empty strings": '{"pairs": [["", "今天"]]}'.encode(),
    "unknown field": b'{"pairs": [["a", "b"]], "debug": true}',
    "too many pairs": json.dumps({"pairs": [["a", "b"]] * 10_000}).encode(),
    "text too long": json.dumps({"pairs": [["长" * 300, "b"]]}).encode(),
    "body over the limit": json.dumps({"pairs": [["a" * 1_000_000, "b"]]}).encode(),
    "not UTF-8": b'{"pairs": [["\xff\xfe", "a"]]}',
}


@pytest.mark.parametrize("what", list(BAD))
def test_bad_input_gets_a_json_4xx_and_the_service_goes_on(client, what):
    response = client.post("/similarity", content=BAD[what], headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:200])
    assert "detail" in response.json()
    assert client.post("/similarity", json={"pairs": PAIRS[:1]}).status_code == 200


def test_a_streamed_body_is_cut_off_at_the_limit(client):
    chunks = (b"x" * 10_000 for _ in range(100))  # no Content-Length: refused while it arrives
    response = client.post("/embed", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "bytes" in response.json()["detail"]


def test_classify_needs_exactly_one_of_texts_and_pairs(client):
    assert client.post("/classify", json={"texts": ["好"], "pairs": PAIRS}).status_code == 422
    assert client.post("/classify", json={}).status_code == 422
    assert client.post("/classify", json={"texts": ["这家酒店很干净"]}).json()["results"][0]["label"] in ("0", "1")


def test_a_json_body_is_read_whatever_content_type_curl_declares(client):
    form = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
    answer = client.post("/similarity", content=json.dumps({"pairs": PAIRS[:2]}), headers=form)
    assert answer.status_code == 200 and len(answer.json()["scores"]) == 2
    assert client.post("/similarity", content="pairs=a,b", headers=form).status_code == 422


def test_serve_without_the_deploy_extra_names_it(model_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    assert main(["serve", str(model_dir)]) == 2
    assert "pip install 'albert_zh[deploy]'" in capsys.readouterr().err


def test_missing_or_broken_model_fails_at_start_up(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "model folder not found" in capsys.readouterr().err
    broken = save_classifier(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert main(["serve", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("albert-zh serve: error:") and "Traceback" not in err


# ---- entities -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ner_client(tmp_path_factory):
    tagger = save_tagger(tmp_path_factory.mktemp("serve") / "tagger")
    config = ServeConfig(model=str(tagger), max_items=50, max_chars=200, max_body_bytes=50_000)
    with TestClient(BodyLimit(create_app(EntityRecognizer.load(tagger), config), config.max_body_bytes)) as c:
        yield c, tagger


def test_ner_answers_equal_the_python_api_and_other_routes_say_so(ner_client, client):
    c, tagger = ner_client
    assert c.post("/ner", json={"texts": TEXTS}).json() == {"entities": EntityRecognizer.load(tagger).predict(TEXTS)}
    assert c.get("/health").json()["entity_types"] == ["address", "name", "organization"]
    for route, body in (("/classify", {"texts": ["好"]}), ("/similarity", {"pairs": PAIRS}), ("/embed", {"texts": ["好"]})):
        answer = c.post(route, json=body)
        assert answer.status_code == 400 and "/ner" in answer.json()["detail"]
    assert client.post("/ner", json={"texts": ["好"]}).status_code == 400  # a classifier has no /ner


NER_BAD = {
    "malformed JSON": b'{"texts": ["a"',
    "empty list": b'{"texts": []}',
    "not strings": b'{"texts": [1, {"a": 2}]}',
    "empty string": b'{"texts": [" "]}',
    "too many texts": json.dumps({"texts": ["a"] * 10_000}).encode(),
    "text too long": json.dumps({"texts": ["长" * 300]}).encode(),
    "body over the limit": json.dumps({"texts": ["a" * 1_000_000]}).encode(),
}


@pytest.mark.parametrize("what", list(NER_BAD))
def test_ner_bad_input_gets_a_json_4xx(ner_client, what):
    c, _ = ner_client
    response = c.post("/ner", content=NER_BAD[what], headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:200])
    assert "detail" in response.json()
    assert c.post("/ner", json={"texts": TEXTS[:1]}).status_code == 200
