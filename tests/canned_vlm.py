"""An OpenAI-compatible chat server on loopback that answers from canned replies and records each request."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CannedVLM:
    """``answers`` maps a phrase of the prompt to ``reply(images) -> str``; ``requests`` keeps every message list."""

    def __init__(self, answers):
        outer, self.prompts, self.requests = self, [], []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send({"data": []})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                parts = body["messages"][-1]["content"]
                parts = [{"type": "text", "text": parts}] if isinstance(parts, str) else parts
                text = " ".join(p["text"] for p in parts if p["type"] == "text")
                images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
                outer.prompts.append((text, len(images)))
                answer = next(a for key, a in answers.items() if key in text)
                self._send({"choices": [{"message": {"role": "assistant", "content": answer(images)}}]})

            def _send(self, payload):
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
