"""``u2s convert-internvl``: an InternVL remote-code checkpoint (e.g. InternVL2.5-8B) in transformers' native format."""

from ..models.internvl_convert import convert_internvl

DTYPES = {"keep": None, "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def register(subparsers):
    p = subparsers.add_parser(
        "convert-internvl",
        help="convert an InternVL checkpoint published as remote code (internvl_chat) to the native InternVL format",
    )
    p.add_argument("source", help="the checkpoint's folder, e.g. from `hf download OpenGVLab/InternVL2_5-8B --local-dir SRC`")
    p.add_argument("destination", help="the folder to write; pass it as vlm_model afterwards")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="keep", help="cast the weights (default: keep the checkpoint's)")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    dtype = DTYPES[args.dtype]
    out = convert_internvl(args.source, args.destination, dtype=getattr(torch, dtype) if dtype else None)
    print(f"converted {args.source} -> {out}; use it as vlm_model={out!r}")
    return 0
