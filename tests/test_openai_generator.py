"""The openai generator against a real local HTTP server that serves the tiny model."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from knowrl import KnowrlError
from knowrl.generation import SamplingParams, make_generator, user_prompt
from knowrl.generation._openai import OpenAIGenerator


class Server:
    """A minimal OpenAI-compatible /v1/chat/completions on 127.0.0.1 backed by a knowrl generator."""

    def __init__(self, backend, script=()):
        self.backend, self.script, self.requests = backend, list(script), []
        self.lock = threading.Lock()  # the backend seeds torch's global RNG: one generation at a time
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                action = outer.script.pop(0) if outer.script else "ok"
                if action == "error":
                    return self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                if action == "slow":
                    time.sleep(3)
                params = SamplingParams(body["temperature"], body["top_p"], -1, body["max_tokens"])
                with outer.lock:
                    c = outer.backend.generate([body["messages"]], params, 1, [[body["seed"]]])[0][0]
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": c.text},
                                "finish_reason": c.finish_reason,
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": c.tokens, "total_tokens": c.tokens + 1},
                    },
                )

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def backend(tiny_model):
    return make_generator("transformers", tiny_model, batch_size=4)


def test_generates_through_a_server(backend):
    server = Server(backend)
    try:
        gen = make_generator("openai", "tiny", server_url=server.url)
        out = gen.generate(
            [user_prompt("What is 1+1?"), user_prompt("Hi")], SamplingParams(1.0, 1.0, -1, 8), 3, [[1, 2, 3], [4, 5, 6]]
        )
        gen.close()
    finally:
        server.close()
    assert [len(row) for row in out] == [3, 3]
    assert sorted(r["seed"] for r in server.requests) == [1, 2, 3, 4, 5, 6]
    assert all(1 <= c.tokens <= 8 and c.finish_reason in ("stop", "length") for row in out for c in row)
    direct = backend.generate([user_prompt("Hi")], SamplingParams(1.0, 1.0, -1, 8), 1, [[4]])[0][0]
    assert out[1][0].text == direct.text  # the same seed gives the same sample through the server


def test_retries_a_server_error_and_a_slow_response(backend):
    server = Server(backend, script=["error", "slow"])
    try:
        gen = OpenAIGenerator("tiny", server.url, timeout_s=1.0, max_retries=3, concurrency=1)
        t = time.monotonic()
        out = gen.generate([user_prompt("Hi")], SamplingParams(1.0, 1.0, -1, 4), 1, [[7]])
        gen.close()
    finally:
        server.close()
    assert len(server.requests) == 3  # 500, then a timed-out request, then success
    assert out[0][0].seed == 7 and time.monotonic() - t < 30


def test_gives_up_with_a_clear_error(backend):
    server = Server(backend, script=["error"] * 10)
    try:
        gen = OpenAIGenerator("tiny", server.url, timeout_s=1.0, max_retries=1, concurrency=1)
        with pytest.raises(KnowrlError, match="generation server .* failed"):
            gen.generate([user_prompt("Hi")], SamplingParams(), 1, [[1]])
        gen.close()
    finally:
        server.close()
    assert len(server.requests) == 2
