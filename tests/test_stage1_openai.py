"""Stage 1 through an OpenAI-compatible endpoint: a real HTTP server on loopback speaking chat completions."""

import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from datasets import Dataset, Features, Image as ImageFeature
from PIL import Image

from u2s_datasets.samples import sample_images
from u2s_datasets import Unsafe2Safe, resolve_config
from u2s_datasets.inspect.openai_backend import OpenAIInspector
from u2s_datasets.models.openai_chat import EndpointError

ASTRONAUT_ANSWER = {
    "is_private": True,
    "categories": ["people_faces", "cultural_political_religious"],
    "review": [
        {"item": "astronaut's face", "reason": "identifies her", "category": "people_faces", "box": [300, 100, 550, 350]},
        {"item": "flag", "reason": "national symbol", "category": "cultural_political_religious", "box": [0, 0, 300, 450]},
    ],
    "private_caption": "Astronaut Eileen Collins in an orange suit in front of a US flag, holding a helmet.",
    "public_caption": "An astronaut in an orange suit in front of a plain flag, holding a helmet.",
}
HOPPER_ANSWER = {
    "is_private": True,
    "categories": ["people_faces", "professional_school"],
    "review": [{"item": "face", "reason": "identifies her", "category": "people_faces", "box": [250, 150, 750, 500]}],
    "private_caption": "Grace Hopper in a navy uniform with insignia.",
    "public_caption": "A person in a dark uniform.",
}
COFFEE_ANSWER = {"is_private": False, "categories": [], "review": [], "private_caption": "A cup of coffee on a saucer.",
                 "public_caption": "A cup of coffee on a saucer."}
INSTRUCTION = {"instruction": "Give the person a different generic face and make any insignia plain; keep the pose.",
               "target_caption": "A person with a generic face."}


def photos():
    images = sample_images()
    return {"astronaut": images["astronaut"], "coffee": images["coffee"], "hopper": images["grace_hopper"]}


PHOTOS = photos()
BY_SIZE = {image.size: name for name, image in PHOTOS.items()}


class ChatServer:
    """A chat-completions server on 127.0.0.1; ``reply(request_json, image)`` gives the content or an HTTP code."""

    def __init__(self, reply, stall_seconds: float = 0.0):
        self.requests, self.images, self.headers = [], [], []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "served"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                image = _image_in(body)
                if image is not None:
                    server.images.append(image)
                if stall_seconds:
                    server.release.wait(stall_seconds)
                answer = reply(body, image)
                if isinstance(answer, int):
                    self._send(answer, {"error": "busy"})
                else:
                    self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]})

            def _send(self, code, payload):
                data_bytes = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data_bytes)))
                    self.end_headers()
                    self.wfile.write(data_bytes)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _image_in(body):
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith("data:image/jpeg;base64,")
                    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    return None


def _text_of(body) -> str:
    parts = []
    for message in body["messages"]:
        content = message["content"]
        parts += [content] if isinstance(content, str) else [p.get("text", "") for p in content]
    return "\n".join(parts)


def good_reply(body, image):
    if image is None:  # an instruction request
        return json.dumps(INSTRUCTION)
    name = BY_SIZE[image.size]
    answer = {"astronaut": ASTRONAUT_ANSWER, "hopper": HOPPER_ANSWER, "coffee": COFFEE_ANSWER}[name]
    return "```json\n" + json.dumps(answer) + "\n```"


def _dataset(names):
    return Dataset.from_dict({"image": [PHOTOS[n] for n in names]}, features=Features({"image": ImageFeature()}))


def _transform(url, **overrides):
    settings = dict(stage1_backend="openai", openai_base_url=url, vlm_model="served-vlm", llm_model="served-llm",
                    editor="blur", edit_scope="regions", openai_timeout=10.0, vlm_box_format="normalized_1000")
    settings.update(overrides)
    return Unsafe2Safe(preset="paper", **settings)


def test_good_path_through_ds_map(monkeypatch):
    monkeypatch.setenv("U2S_TEST_KEY", "secret-123")
    names = ["astronaut", "coffee", "hopper"]
    with ChatServer(good_reply) as server:
        out = _dataset(names).map(_transform(server.url, openai_api_key_env="U2S_TEST_KEY", max_new_tokens=300),
                                  batched=True, batch_size=3)

    # The images arrived as data URLs that decode to the photos sent.
    assert sorted(BY_SIZE[i.size] for i in server.images) == sorted(names)
    for image in server.images:
        original = np.asarray(PHOTOS[BY_SIZE[image.size]]).astype(int)
        assert np.abs(np.asarray(image).astype(int) - original).mean() < 3
    inspections = [r for r in server.requests if _image_in(r) is not None]
    instructions = [r for r in server.requests if _image_in(r) is None]
    assert {r["model"] for r in inspections} == {"served-vlm"} and {r["model"] for r in instructions} == {"served-llm"}
    assert all(r["temperature"] == 0 and r["max_tokens"] == 300 for r in inspections)
    assert all({k.lower(): v for k, v in h.items()}.get("authorization") == "Bearer secret-123" for h in server.headers)
    assert "people_faces" in _text_of(inspections[0])
    # Only private rows reach the instruction writer, and it never sees the private caption.
    assert len(instructions) == 2
    assert all("Eileen" not in _text_of(r) and "Grace" not in _text_of(r) for r in instructions)
    assert any(ASTRONAUT_ANSWER["public_caption"] in _text_of(r) for r in instructions)

    astronaut, coffee, hopper = out
    assert astronaut["is_private"] and astronaut["u2s_status"] == "edited"
    assert astronaut["privacy_categories"] == ["people_faces", "cultural_political_religious"]
    assert astronaut["public_caption"] == ASTRONAUT_ANSWER["public_caption"]
    assert astronaut["private_caption"] == ASTRONAUT_ANSWER["private_caption"]
    assert astronaut["edit_instruction"] == INSTRUCTION["instruction"]
    assert astronaut["privacy_regions"] == [{"category": "people_faces", "box": [153, 51, 282, 180], "score": 1.0},
                                            {"category": "cultural_political_religious", "box": [0, 0, 154, 231], "score": 1.0}]
    safe, original = np.asarray(astronaut["safe_image"].convert("RGB")), np.asarray(PHOTOS["astronaut"])
    assert np.array_equal(safe[400:, 400:], original[400:, 400:])  # far from the face: untouched
    assert np.abs(safe[60:170, 160:270].astype(int) - original[60:170, 160:270]).mean() > 5  # the face: changed

    assert coffee["is_private"] is False and coffee["u2s_status"] == "passthrough" and coffee["edit_instruction"] == ""
    assert np.array_equal(np.asarray(coffee["safe_image"].convert("RGB")), np.asarray(PHOTOS["coffee"]))
    assert hopper["u2s_status"] == "edited" and hopper["privacy_categories"] == ["people_faces", "professional_school"]


def test_a_finding_without_a_box_edits_the_whole_image():
    flag_unboxed = dict(ASTRONAUT_ANSWER, review=[dict(ASTRONAUT_ANSWER["review"][0]),
                                                 {"item": "flag", "category": "cultural_political_religious"}])

    def reply(body, image):
        return json.dumps(INSTRUCTION) if image is None else json.dumps(flag_unboxed)

    with ChatServer(reply) as server:
        out = _dataset(["astronaut"]).map(_transform(server.url), batched=True)
    row = out[0]
    # Where the flag is is unknown, so no part of the image may be left as it was.
    assert row["u2s_status"] == "edited" and row["privacy_regions"] == []
    safe, original = np.asarray(row["safe_image"].convert("RGB")), np.asarray(PHOTOS["astronaut"])
    assert np.abs(safe[400:, 400:].astype(int) - original[400:, 400:]).mean() > 2


def test_unusable_answer_is_repaired_once():
    def reply(body, image):
        if image is None:
            return json.dumps(INSTRUCTION)
        if len(body["messages"]) == 2:  # the system message and the request
            return "Let me think about the privacy of this image. It shows a cup."
        return json.dumps(COFFEE_ANSWER)

    with ChatServer(reply) as server:
        out = _dataset(["coffee"]).map(_transform(server.url), batched=True)
    assert out[0]["u2s_status"] == "passthrough" and out[0]["public_caption"] == COFFEE_ANSWER["public_caption"]
    repair = server.requests[1]["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "It shows a cup" in repair[2]["content"] and "no JSON object" in repair[3]["content"]


def test_answers_unusable_twice_fail_closed():
    with ChatServer(lambda body, image: "I cannot determine that.") as server:
        out = _dataset(["astronaut"]).map(_transform(server.url), batched=True)
    row = out[0]
    assert row["is_private"] is True and row["u2s_status"].startswith("error: inspection answer unusable")
    assert np.asarray(row["safe_image"].convert("RGB")).max() == 0
    assert len(server.requests) == 2


def test_bad_instruction_fails_only_its_row():
    def reply(body, image):
        if image is None:
            return "%%%" if HOPPER_ANSWER["public_caption"] in _text_of(body) else json.dumps(INSTRUCTION)
        return good_reply(body, image)

    with ChatServer(reply) as server:
        out = _dataset(["astronaut", "hopper"]).map(_transform(server.url), batched=True)
    assert out[0]["u2s_status"] == "edited"
    assert out[1]["u2s_status"].startswith("error: instruction failed") and out[1]["edit_instruction"] == ""
    assert np.asarray(out[1]["safe_image"].convert("RGB")).max() == 0


def test_busy_server_is_retried_with_backoff():
    attempts = []

    def reply(body, image):
        attempts.append(time.monotonic())
        return 503 if len(attempts) == 1 else good_reply(body, image)

    with ChatServer(reply) as server:
        inspector = OpenAIInspector(resolve_config("paper", **_settings(server.url)))
        [inspection] = inspector.inspect([PHOTOS["coffee"]], [None])
    assert inspection.error is None and inspection.is_private is False
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.9


def test_stalling_server_times_out_within_bounds():
    with ChatServer(good_reply, stall_seconds=30) as server:
        start = time.monotonic()
        out = _dataset(["coffee"]).map(_transform(server.url, openai_timeout=0.5, openai_max_retries=1), batched=True)
        elapsed = time.monotonic() - start
    row = out[0]
    assert row["is_private"] is True
    assert row["u2s_status"].startswith("error: inspection failed (EndpointError") and "no answer within 0.5s" in row["u2s_status"]
    assert elapsed < 15


def test_refused_port_is_a_clear_error_not_a_hang():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    start = time.monotonic()
    with pytest.raises(EndpointError, match=f"Cannot reach the chat endpoint {url}: connection refused"):
        _transform(url)({"image": [PHOTOS["coffee"]]})
    assert time.monotonic() - start < 5


def _settings(url):
    return dict(stage1_backend="openai", openai_base_url=url, vlm_model="served-vlm", llm_model="served-llm")
