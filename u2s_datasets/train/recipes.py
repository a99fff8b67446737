"""Named training recipes: the settings a published run used, applied as one preset.

``recipe="paper"`` for the InstructPix2Pix editor is the authors' MagicBrush fine-tuning
(their Lightning config ``train_unsafe2safe.yaml`` and data loader): 256 px, each image
stretched to the square (Lanczos), horizontal flips 0.5 on the pair, batch 64 with
gradient accumulation 4, 200 epochs, AdamW at a constant 1e-5 (no learning-rate scaling,
weight decay 0.01), no gradient clipping (Lightning's default), EMA 0.9999, conditioning
dropout 5%. For ``flux-omini`` the trainer's defaults are the paper's OminiControl run
(``omini.py``), so both names give it. Settings passed
next to a recipe override its values; ``"default"`` is the trainer's own defaults.
"""

RECIPES = {
    "ip2p": {
        "default": {},
        "paper": dict(resolution=256, resize="stretch", flip_prob=0.5, batch_size=64, gradient_accumulation=4, epochs=200,
                      learning_rate=1e-5, lr_scheduler="constant", lr_warmup_steps=0, adam_weight_decay=1e-2, max_grad_norm=0.0,
                      ema=True, ema_decay=0.9999, conditioning_dropout=0.05),
    },
    "flux-kontext": {"default": {}},
    "flux-omini": {"default": {}, "paper": {}},  # its defaults are the paper's recipe (omini.py)
}


def recipe_settings(editor: str, recipe: str, settings: dict) -> dict:
    """The recipe's settings of ``editor`` with ``settings`` on top, and the recipe's name."""
    known = RECIPES[editor]
    if recipe not in known:
        raise ValueError(f"recipe={recipe!r} is not one of {', '.join(map(repr, known))} for the {editor} editor")
    return {**known[recipe], **settings, "recipe": recipe}
