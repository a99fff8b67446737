"""``u2s apply-review OUTPUT``: write the review's decisions into the images, without running stage 1 again."""


def register(subparsers):
    p = subparsers.add_parser(
        "apply-review", help="re-render the rows a review changed, with the run's editor and seed",
        description="Reads OUTPUT/review.jsonl, re-renders the rows whose decisions change them from their original "
        "images, stored regions and the run's editor and seed, and records the review in OUTPUT/u2s_config.json.",
    )
    p.add_argument("output", help="the save_to_disk folder written by u2s anonymize and reviewed with u2s review")
    p.add_argument("--out", help="write the reviewed dataset here instead of rewriting OUTPUT in place")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..review import apply_review

    summary = apply_review(args.output, args.out)
    print(f"{summary['rows_reviewed']} rows reviewed, {summary['rows_rerendered']} re-rendered"
          + (f", {len(summary['failed'])} could not be read again and were left as they were" if summary["failed"] else "")
          + f"; written to {args.out or args.output}")
    return 1 if summary["failed"] else 0
