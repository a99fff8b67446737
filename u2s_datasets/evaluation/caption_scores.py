"""Caption metrics as the COCO caption evaluation computes them (pycocoevalcap, the scorer LAVIS reports).

Captions are tokenised by the Stanford PTB tokenizer (lower case, punctuation removed), then scored
against every reference caption of their image: BLEU-1..4 (corpus level, closest reference length),
METEOR 1.5, ROUGE-L (beta 1.2) and CIDEr-D (document frequencies from the references, x 10).
The tokenizer and METEOR are Java programs shipped in the ``pycocoevalcap`` wheel: they need a Java
runtime (``apt-get install default-jre-headless``). SPICE (``spice=True``) also downloads Stanford
CoreNLP's models on its first run.
"""

import logging
import shutil
from typing import Optional

logger = logging.getLogger(__name__)


def _check_captions(predictions: list, references: list):
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predicted captions for {len(references)} reference lists")
    for i, (prediction, refs) in enumerate(zip(predictions, references)):
        if not isinstance(prediction, str):
            raise TypeError(f"predictions[{i}]: expected a caption (str), got {type(prediction).__name__}")
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            raise ValueError(f"references[{i}]: expected a non-empty list of non-empty captions, got {refs!r}")


def compute_caption_scores(predictions: list, references: list, *, meteor: bool = True, spice: bool = False,
                           tokenize: bool = True) -> dict:
    """Corpus scores of ``predictions`` (one caption per image) against ``references`` (captions per image).

    Returns ``bleu_1`` .. ``bleu_4``, ``meteor``, ``rouge_l``, ``cider`` (and ``spice``), each with its
    per-image list under ``per_image``.
    """
    _check_captions(predictions, references)
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as e:
        raise ImportError("caption scores need pycocoevalcap: pip install 'u2s-datasets[caption]'") from e
    if (tokenize or meteor or spice) and shutil.which("java") is None:
        raise RuntimeError("the PTB tokenizer, METEOR and SPICE of pycocoevalcap run on Java; none was found "
                           "(apt-get install default-jre-headless)")
    gts = {i: [{"caption": c} for c in refs] for i, refs in enumerate(references)}
    res = {i: [{"caption": c}] for i, c in enumerate(predictions)}
    if tokenize:
        tokenizer = PTBTokenizer()
        gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    else:
        gts = {i: [c["caption"] for c in v] for i, v in gts.items()}
        res = {i: [c["caption"] for c in v] for i, v in res.items()}
    # An empty prediction tokenises to nothing; the scorers need one string per image.
    res = {i: v if v else [""] for i, v in res.items()}
    result, per_image = {}, {}
    bleu, bleu_images = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        result[f"bleu_{n + 1}"], per_image[f"bleu_{n + 1}"] = float(bleu[n]), [float(v) for v in bleu_images[n]]
    scorers = [("rouge_l", Rouge()), ("cider", Cider())]
    if meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        scorers.append(("meteor", Meteor()))
    if spice:
        from pycocoevalcap.spice.spice import Spice

        scorers.append(("spice", Spice()))
    for name, scorer in scorers:
        try:
            score, scores = scorer.compute_score(gts, res)
        finally:
            _close(scorer)
        result[name] = float(score)
        per_image[name] = [float(s["All"]["f"]) if isinstance(s, dict) else float(s) for s in scores]
    result["num_images"] = len(predictions)
    result["per_image"] = per_image
    result["models"] = {"scorer": {"id": "pycocoevalcap (COCO caption evaluation)", "revision": _version()}}
    return result


def _close(scorer):
    process = getattr(scorer, "meteor_p", None)
    if process is not None:  # METEOR keeps a Java process per scorer
        process.kill()
        process.wait()


def _version() -> Optional[str]:
    import importlib.metadata

    try:
        return importlib.metadata.version("pycocoevalcap")
    except importlib.metadata.PackageNotFoundError:
        return None
