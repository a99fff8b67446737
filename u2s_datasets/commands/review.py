"""``u2s review OUTPUT``: look at what was flagged, on a local page, and record corrections."""

import webbrowser


def register(subparsers):
    p = subparsers.add_parser(
        "review", help="review a saved output on a local page: accept, redact, delete or draw regions",
        description="Serves a page over the rows of OUTPUT (written by u2s anonymize). Every decision is appended to "
        "OUTPUT/review.jsonl with who made it and when; `u2s apply-review OUTPUT` writes them into the images. "
        "The page answers only the address printed, which carries a secret token for this run.",
    )
    p.add_argument("output", help="the save_to_disk folder written by u2s anonymize")
    p.add_argument("--port", type=int, default=8765, help="port to serve on (default: 8765; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--reviewer", default=None,
                   help="name recorded with each decision (default: the user name); the account running the server is recorded beside it")
    p.add_argument("--low-confidence", type=float, default=0.6, help="regions scored below this are marked low confidence")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..review.decisions import os_user
    from ..review.server import ReviewServer

    server = ReviewServer(args.output, args.host, args.port, args.reviewer or os_user(), args.low_confidence)
    print(f"reviewing {args.output} at {server.url} (Ctrl+C to stop); decisions go to {args.output}/review.jsonl", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
