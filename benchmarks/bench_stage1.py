"""Stage-1 plumbing overhead per row next to the model call.

    PYTHONPATH=. python benchmarks/bench_stage1.py                      # tiny random-weight LLaVA, CPU
    PYTHONPATH=. python benchmarks/bench_stage1.py --vlm-model <folder> --device cuda:0 --batch-sizes 1 8 16

With a real (or random full-size) checkpoint folder on a GPU this gives stage-1 images/s
per batch size. The plumbing (prompt building, answer parsing, repair bookkeeping) is
timed apart from ``generate`` (chat template, image processing, generation, decoding).
"""

import argparse
import sys
import tempfile
import time
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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.vlm_model
        if model is None:
            from tiny_chat_models import save_tiny_vlm

            model = save_tiny_vlm(Path(tmp) / "tiny-vlm")
        images = [Image.fromarray(a) for a in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())]
        images = (images * args.rows)[: args.rows]

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
                                    max_new_tokens=args.max_new_tokens)
            inspector = TransformersInspector(config)
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
