"""The metrics load through evaluate: from a checkout, combined, and as u2s/<name> after install."""

import os
import subprocess
import sys
import textwrap

import pytest

from photos import astronaut, chelsea

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("privacy", "quality", "cheating", "utility", "flags")


def test_load_from_a_checkout_and_combine(tmp_path):
    import evaluate

    privacy = evaluate.load(os.path.join(REPO, "metrics", "privacy"), cache_dir=str(tmp_path))
    cheating = evaluate.load(os.path.join(REPO, "metrics", "cheating"), cache_dir=str(tmp_path))
    face, cat = astronaut(), chelsea()
    combined = evaluate.combine([privacy, cheating])
    result = combined.compute(predictions=[face, cat], references=[face, face], text=False, clip=False, progress=False)
    assert result["face_similarity"] < 1.0 and result["face_survival_rate"] == 0.5
    assert result["ssim"] < 1.0 and result["lpips"] is None
    # Both modules' per-image lists and models survive, prefixed because their names collide.
    assert len(result["privacy_per_image"]["face_similarity"]) == 2
    assert len(result["cheating_per_image"]["ssim"]) == 2


def test_metric_edge_errors(tmp_path):
    import evaluate

    privacy = evaluate.load(os.path.join(REPO, "metrics", "privacy"), cache_dir=str(tmp_path))
    face = astronaut()
    with pytest.raises(ValueError, match="differ in length"):
        privacy.compute(predictions=[face], references=[face, face])
    with pytest.raises(ValueError, match=r"predictions\[0\].*None"):
        privacy.compute(predictions=[None], references=[face])
    with pytest.raises(TypeError, match=r"references\[0\].*float"):
        privacy.add_batch(predictions=[face], references=[1.5])
    with pytest.raises(TypeError, match="unknown option.*colour"):
        privacy.compute(predictions=[face], references=[face], colour="red")


def test_register_writes_into_evaluates_module_cache(tmp_path):
    sys.path.insert(0, REPO)
    try:
        import importlib

        hook = importlib.import_module("metrics")
    finally:
        sys.path.remove(REPO)
    written = hook.register(str(tmp_path))
    assert [os.path.basename(p) for p in written] == [f"{n}.py" for n in NAMES]
    for name, script in zip(NAMES, written):
        hash_dir = os.path.basename(os.path.dirname(script))
        assert len(hash_dir) == 64 and os.path.dirname(os.path.dirname(script)).endswith(f"u2s--{name}")
        with open(script) as copied, open(os.path.join(REPO, "metrics", name, f"{name}.py")) as original:
            assert copied.read() == original.read()
    assert hook.register(str(tmp_path)) == written  # idempotent


def test_u2s_ids_load_offline_in_a_fresh_process_after_pip_install(tmp_path):
    """pip install -e . into a fresh environment, then evaluate.load("u2s/<name>") with the Hub offline."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The fresh environment sees the dependencies of the current one, but not its u2s_datasets.
    current = [p for p in sys.path if p.endswith("site-packages")]
    with open(os.path.join(site, "_dependencies.pth"), "w") as f:
        f.write("\n".join(current) + "\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--ignore-installed",
                    "-e", REPO], check=True, env=env, cwd=str(tmp_path))
    script = textwrap.dedent("""
        import sys
        import evaluate
        assert "u2s_datasets" not in sys.modules
        modules = [evaluate.load("u2s/" + name) for name in ("privacy", "quality", "cheating", "utility")]
        print(",".join(type(m).__name__ for m in modules))
        import skimage.data
        face = skimage.data.astronaut()
        print(modules[2].compute(predictions=[face], references=[face], clip=False)["ssim"])
    """)
    done = subprocess.run([python, "-c", script], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    names, ssim = done.stdout.strip().splitlines()[-2:]
    assert names == "Privacy,Quality,Cheating,Utility"
    assert float(ssim) == pytest.approx(1.0)


def test_quality_and_utility_modules_take_their_extra_inputs(tmp_path):
    import evaluate
    from tiny_models import tiny_clip

    from photos import coffee

    clip = tiny_clip(str(tmp_path / "clip"))
    quality = evaluate.load(os.path.join(REPO, "metrics", "quality"), cache_dir=str(tmp_path))
    cup, cat = coffee(), chelsea()
    result = quality.compute(predictions=[cup, cat], references=[cup, cat], captions=["a cup", "a cat"], clip_model=clip)
    assert len(result["per_image"]["clip_score"]) == 2 and result["models"]["clip"]["id"] == clip
    with pytest.raises(ValueError, match="missing"):
        quality.compute(predictions=[cup], references=[cup], clip_model=clip)

    utility = evaluate.load(os.path.join(REPO, "metrics", "utility"), cache_dir=str(tmp_path))
    train = [cup, cup[::-1].copy(), cat, cat[:, ::-1].copy()]
    for labels in ([0, 0, 1, 1], ["cup", "cup", "cat", "cat"]):
        result = utility.compute(predictions=train, references=train, labels=labels,
                                 test_images=[cup, cat], test_labels=labels[::2])
        assert result["raw_accuracy"] == 1.0 and result["accuracy_ratio"] == 1.0
