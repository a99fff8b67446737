"""Stage-1 inspection rows/s: the transformers backend per batch size, an OpenAI-compatible server per concurrency.

    PYTHONPATH=. python benchmarks/bench_stage1.py                      # tiny random-weight LLaVA, CPU
    PYTHONPATH=. python benchmarks/bench_stage1.py --vlm-model <folder> --device cuda:0 --batch-sizes 1 8 16 32
    PYTHONPATH=. python benchmarks/bench_stage1.py --skip-transformers --openai-base-url http://localhost:8000/v1 \
        --openai-model Qwen/Qwen2.5-VL-7B-Instruct --concurrency 1 4 16 64

With a real (or random full-size) checkpoint folder on a GPU the first part gives stage-1
images/s per batch size (batched ``generate``, bf16 on CUDA, the model's SDPA attention).
The plumbing (prompt building, answer parsing, repair bookkeeping) is timed apart from
``generate`` (chat template, image processing, generation, decoding). The second part sends
the same rows to a chat-completions server (vLLM, SGLang, TGI) with ``openai_concurrency``
requests in flight; without ``--openai-base-url`` a loopback stand-in answering after
``--stand-in-ms`` is used, which times the client alone.
"""

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from u2s_datasets import prompts, resolve_config  # noqa: E402
from u2s_datasets.inspect.parsing import parse_inspection  # noqa: E402
from u2s_datasets.inspect.vlm import TransformersInspector  # noqa: E402

REALISTIC_ANSWER = (
    '```json\n{"is_private": true, "categories": ["people_faces", "text_symbols"], "review": ['
    '{"item": "woman\'s face", "reason": "identifies her", "category": "people_faces", "box": [100, 200, 300, 600]},'
    '{"item": "name badge", "reason": "shows her name", "category": "text_symbols", "box": [400, 500, 480, 560]}],'
    '"private_caption": "A woman with a badge reading Anna Meyer stands at a desk in an office.",'
    '"public_caption": "A person with a plain badge stands at a desk in an office."}\n```'
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vlm-model", help="checkpoint folder or hub id; default: a tiny random-weight LLaVA")
    parser.add_argument("--device", default=None)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--openai-base-url", help="an OpenAI-compatible server; default: a loopback stand-in")
    parser.add_argument("--openai-model", default="served")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--stand-in-ms", type=float, default=200.0, help="answer latency of the loopback stand-in")
    args = parser.parse_args()
    images = [Image.fromarray(a) for a in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())]
    images = (images * args.rows)[: args.rows]
    if not args.skip_transformers:
        transformers_rows_per_second(args, images)
    openai_rows_per_second(args, images)


def openai_rows_per_second(args, images):
    from u2s_datasets.inspect.openai_backend import OpenAIInspector

    server = None if args.openai_base_url else StandInServer(args.stand_in_ms / 1000.0)
    url = args.openai_base_url or server.url
    where = url if args.openai_base_url else f"loopback stand-in answering in {args.stand_in_ms:g} ms"
    print(f"\nOpenAI-compatible server: {where}")
    print(f"{'concurrency':>11} {'rows':>5} {'ms/row':>8} {'rows/s':>8}")
    try:
        for concurrency in args.concurrency:
            config = resolve_config("paper", stage1_backend="openai", openai_base_url=url, openai_model=args.openai_model,
                                    openai_concurrency=concurrency, max_new_tokens=args.max_new_tokens)
            inspector = OpenAIInspector(config)
            inspector.inspect(images[:1], [None])  # warm-up: connection, model lookup
            start = time.perf_counter()
            inspector.inspect(images, [None] * len(images))
            total = time.perf_counter() - start
            print(f"{concurrency:>11} {len(images):>5} {total / len(images) * 1e3:>8.1f} {len(images) / total:>8.2f}")
    finally:
        if server is not None:
            server.close()


class StandInServer:
    """Chat completions on 127.0.0.1 that answer every request with ``REALISTIC_ANSWER`` after ``latency`` seconds."""

    def __init__(self, latency: float):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": "served"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(latency)
                self._send({"choices": [{"index": 0, "message": {"role": "assistant", "content": REALISTIC_ANSWER}}]})

            def _send(self, payload):
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def transformers_rows_per_second(args, images):
    with tempfile.TemporaryDirectory() as tmp:
        model = args.vlm_model
        if model is None:
            from tiny_chat_models import save_tiny_vlm

            model = save_tiny_vlm(Path(tmp) / "tiny-vlm")

        # Pure plumbing: prompt text and reading a realistic answer, per row.
        n = 2000
        start = time.perf_counter()
        for i in range(n):
            prompts.inspection_prompt("person" if i % 2 else None, "normalized_1000", (512, 512))
        prompt_ms = (time.perf_counter() - start) / n * 1e3
        start = time.perf_counter()
        for _ in range(n):
            parse_inspection(REALISTIC_ANSWER, (1024, 768))
        parse_ms = (time.perf_counter() - start) / n * 1e3
        print(f"prompt building: {prompt_ms:.3f} ms/row   parsing a realistic answer: {parse_ms:.3f} ms/row")

        print(f"{'batch':>5} {'rows':>5} {'total ms/row':>13} {'generate ms/row':>16} {'plumbing ms/row':>16} {'plumbing %':>10} {'images/s':>9}")
        for batch_size in args.batch_sizes:
            config = resolve_config("paper", vlm_model=model, device=args.device, stage1_batch_size=batch_size,
                                    max_new_tokens=args.max_new_tokens, dtype=args.dtype)
            inspector = TransformersInspector(config)
            if batch_size == args.batch_sizes[0]:
                model_config = inspector.chat.model.config
                print(f"{inspector.chat.model.dtype}, attention: {getattr(model_config, '_attn_implementation', '?')}")
            generate, spent = inspector.chat.generate, [0.0]

            def timed(conversations, max_new_tokens, generate=generate, spent=spent):
                t = time.perf_counter()
                try:
                    return generate(conversations, max_new_tokens)
                finally:
                    spent[0] += time.perf_counter() - t

            inspector.chat.generate = timed
            inspector.inspect(images[:batch_size], [None] * batch_size)  # warm-up
            spent[0] = 0.0
            start = time.perf_counter()
            for s in range(0, len(images), batch_size):
                chunk = images[s : s + batch_size]
                inspector.inspect(chunk, [None] * len(chunk))
            total = time.perf_counter() - start
            rows = len(images)
            plumbing = total - spent[0]
            print(f"{batch_size:>5} {rows:>5} {total / rows * 1e3:>13.1f} {spent[0] / rows * 1e3:>16.1f} "
                  f"{plumbing / rows * 1e3:>16.2f} {100 * plumbing / total:>9.1f}% {rows / total:>9.2f}")
    print("(tiny random weights answer gibberish, so every row also pays for its repair request)" if args.vlm_model is None else "")


if __name__ == "__main__":
    main()
