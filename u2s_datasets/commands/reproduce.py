"""``u2s reproduce``: the paper's protocol end to end on one of its datasets, written as its table."""

from ..reproduce.plan import PAPER_MODELS
from ..reproduce.sources import DATASETS


def register(subparsers):
    p = subparsers.add_parser("reproduce", help="run the paper's whole protocol on caltech101, indoor67 or coco and write its table",
                              description="stage 1 -> FlowEdit targets -> CLIP-ratio filter -> fine-tuning with SafeAttention -> "
                              "anonymization (blur, zero-shot editor, fine-tuned editor) -> quality, cheating, privacy, utility; "
                              "finished stages under --out are skipped on a rerun (docs/evaluation.md)")
    p.add_argument("--dataset", required=True, choices=tuple(DATASETS))
    p.add_argument("--out", required=True, help="folder for every stage's output, table.md and table.json")
    p.add_argument("--tiny", action="store_true", help="tiny random models and a handful of sample photos: the same stages in minutes on a CPU")
    p.add_argument("--data-dir", help="a local copy of the dataset: an imagefolder with train/<class>/ and test/<class>/")
    p.add_argument("--hub-id", help="the dataset's id on the Hub (default: " +
                   ", ".join(f"{k}: {v.hub_id}" for k, v in DATASETS.items()) + ")")
    p.add_argument("--hub-config", help="its configuration (default: the paper dataset's)")
    p.add_argument("--train-split", help="the Hub split to train on (default: train)")
    p.add_argument("--test-split", help="the Hub split to test on (default: test; coco: validation, that is val2014)")
    p.add_argument("--label-column", help="the class column (default: label)")
    p.add_argument("--train-limit", type=int, help="use this many training rows (drawn with seed 42)")
    p.add_argument("--test-limit", type=int, help="use this many test rows")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when there is one)")
    for role, default in PAPER_MODELS.items():
        p.add_argument(f"--{role.replace('_', '-')}", dest=f"model_{role}", metavar="MODEL",
                       help=f"hub id or folder (default: {default})" if default else "folder of InsightFace's antelopev2 pack (required)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..reproduce import markdown, reproduce

    models = {role: getattr(args, f"model_{role}") for role in PAPER_MODELS if getattr(args, f"model_{role}")}
    if args.tiny and models:
        raise ValueError(f"--tiny builds its own models; leave out {', '.join('--' + r.replace('_', '-') for r in models)}")
    table = reproduce(args.dataset, args.out, tiny=args.tiny, models=models, data_dir=args.data_dir, hub_id=args.hub_id,
                      hub_config=args.hub_config, train_split=args.train_split, test_split=args.test_split,
                      label_column=args.label_column, train_limit=args.train_limit, test_limit=args.test_limit, device=args.device)
    print(markdown(table))
    print(f"wrote {table['paths']['markdown']} and {table['paths']['json']}")
    return 0
