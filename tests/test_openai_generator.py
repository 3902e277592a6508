"""The openai generator against a real local HTTP server that serves the tiny model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from scripted import ScriptedGenerator

from knowrl import KnowrlError
from knowrl.generation import SamplingParams, make_generator, user_prompt
from knowrl.generation._openai import OpenAIGenerator


class Server:
    """A minimal OpenAI-compatible /v1/chat/completions on 127.0.0.1 backed by a knowrl generator."""

    def __init__(self, backend, script=()):
        self.backend, self.script, self.requests = backend, list(script), []
        self.lock = threading.Lock()  # the backend seeds torch's global RNG: one generation at a time
        self.answered = threading.Event()
        """Set by the first request answered: a "hang" request waits for it, so it outlasts any client timeout."""
        self.hung_until_answered: list[bool] = []
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
                if action == "hang":  # no answer until the client has given up on it and retried
                    outer.hung_until_answered.append(outer.answered.wait(120))
                params = SamplingParams(body["temperature"], body["top_p"], -1, body["max_tokens"])
                with outer.lock:
                    c = outer.backend.generate([body["messages"]], params, 1, [[body["seed"]]])[0][0]
                if action != "hang":
                    outer.answered.set()
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


def test_retries_a_server_error_and_a_response_that_never_comes():
    """A 500, then a request the server holds until the client has retried it: three requests, one answer.

    The server answers at once otherwise (a scripted backend), so only the held request can outlast the
    client's timeout, however loaded the machine."""
    server = Server(ScriptedGenerator(lambda problem, kps, j, seed: str(seed)), script=["error", "hang"])
    try:
        gen = OpenAIGenerator("tiny", server.url, timeout_s=3.0, max_retries=3, concurrency=1)
        out = gen.generate([user_prompt("Hi")], SamplingParams(1.0, 1.0, -1, 4), 1, [[7]])
        gen.close()
    finally:
        server.answered.set()
        server.close()
    assert len(server.requests) == 3  # 500, then the held request timed out, then success
    assert [r["seed"] for r in server.requests] == [7, 7, 7]  # each retry is the same request
    assert server.hung_until_answered == [True]  # the held request was still open when the retry was answered
    assert out[0][0].seed == 7 and "\\boxed{7}" in out[0][0].text


def test_gives_up_with_a_clear_error(backend):
    server = Server(backend, script=["error"] * 10)
    try:
        gen = OpenAIGenerator("tiny", server.url, timeout_s=60.0, max_retries=1, concurrency=1)
        with pytest.raises(KnowrlError, match="generation server .* failed"):
            gen.generate([user_prompt("Hi")], SamplingParams(), 1, [[1]])
        gen.close()
    finally:
        server.close()
    assert len(server.requests) == 2
