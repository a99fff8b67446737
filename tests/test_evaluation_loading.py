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


def metrics_package():
    """The checkout's ``metrics/`` folder as a module (the installed name may point at another checkout)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("checkout_metrics", os.path.join(REPO, "metrics", "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install(folder, label: str = None) -> str:
    """A folder that imports as an install of this checkout's metrics: ``u2s_datasets_metrics`` inside.

    With ``label``, a copy whose privacy script carries ``INSTALL = label``; otherwise a link to ``metrics/``."""
    import shutil

    os.makedirs(folder, exist_ok=True)
    package = os.path.join(folder, "u2s_datasets_metrics")
    if label is None:
        os.symlink(os.path.join(REPO, "metrics"), package)
    else:
        shutil.copytree(os.path.join(REPO, "metrics"), package, ignore=shutil.ignore_patterns("__pycache__"))
        with open(os.path.join(package, "privacy", "privacy.py"), "a") as f:
            f.write(f"\nINSTALL = {label!r}\n")
    return str(folder)


def run_python(code: str, cwd, site: str, **env_vars) -> str:
    """A fresh interpreter whose ``u2s_datasets_metrics`` is the one in ``site``; its start-up hook runs too."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([site, REPO])}
    env.update(env_vars)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_register_writes_loaders_into_evaluates_module_cache(tmp_path):
    hook = metrics_package()
    written = hook.register(str(tmp_path))
    assert [os.path.basename(p) for p in written] == [f"{n}.py" for n in NAMES]
    for name, script in zip(NAMES, written):
        hash_dir = os.path.basename(os.path.dirname(script))
        assert len(hash_dir) == 64 and os.path.dirname(os.path.dirname(script)).endswith(f"u2s--{name}")
        with open(script) as loader:
            code = loader.read()
        # The entry holds no script: it imports the loading Python's own install of it.
        assert f"from u2s_datasets_metrics.{name}.{name} import {name.capitalize()}" in code
        assert "def " not in code and "class " not in code
    assert hook.register(str(tmp_path)) == written  # idempotent
    with pytest.raises(ValueError, match="absolute"):
        hook.register("relative/cache")


def test_register_repairs_planted_entries(tmp_path):
    hook = metrics_package()
    loader = hook.register(str(tmp_path))[0]
    folder = os.path.dirname(os.path.dirname(loader))
    # A tampered loader, a newer foreign entry dated in the future, and a loader replaced by a symlink.
    with open(loader, "w") as f:
        f.write("import os  # planted\n")
    planted = os.path.join(folder, "f" * 64, "privacy.py")
    os.makedirs(os.path.dirname(planted))
    with open(planted, "w") as f:
        f.write("planted = True\n")
    os.utime(planted, (4e9, 4e9))
    hook.register(str(tmp_path))
    with open(loader, "rb") as f:
        assert f.read() == hook.loader_source("privacy")
    assert os.stat(loader).st_mtime > os.stat(planted).st_mtime

    outside = tmp_path / "outside.py"
    outside.write_text("kept\n")
    os.remove(loader)
    os.symlink(outside, loader)
    hook.register(str(tmp_path))
    assert not os.path.islink(loader) and outside.read_text() == "kept\n"


@pytest.mark.parametrize("variables", [
    {"HF_HOME": ""},
    {"HF_HOME": "relative/hf"},
    {"HF_MODULES_CACHE": ""},
    {"XDG_CACHE_HOME": "cache"},
], ids=["empty HF_HOME", "relative HF_HOME", "empty HF_MODULES_CACHE", "relative XDG_CACHE_HOME"])
def test_startup_hook_writes_nothing_without_an_absolute_cache(variables, tmp_path, monkeypatch):
    hook = metrics_package()
    for name in ("HF_HOME", "HF_MODULES_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert hook.modules_cache() is None and hook.register() == []
    assert os.listdir(tmp_path) == []


def test_startup_hook_in_a_fresh_process_stays_out_of_the_working_directory(tmp_path):
    site = install(tmp_path / "site")
    code = "import u2s_datasets_metrics as m; print(m.__file__); m.register_at_startup()"
    for value in ("", "relative/hf"):
        cwd = tmp_path / f"cwd{len(value)}"
        cwd.mkdir()
        printed = run_python(code, cwd, site, HF_HOME=value)
        assert printed.startswith(site) and os.listdir(cwd) == []
    # The same process with an absolute HF_HOME does register: the hook ran above, and chose to do nothing.
    run_python(code, tmp_path, site, HF_HOME=str(tmp_path / "hf"))
    assert sorted(os.listdir(tmp_path / "hf" / "modules" / "evaluate_modules" / "metrics")) == sorted(
        ["__init__.py"] + [f"u2s--{n}" for n in NAMES])


def test_two_installs_sharing_a_cache_each_run_their_own_script(tmp_path):
    """Install B starts a Python while install A's is running; A still loads A's script, offline,
    by u2s id and by load_metric."""
    first, second = install(tmp_path / "a", "A"), install(tmp_path / "b", "B")
    shared = {"HF_HOME": str(tmp_path / "hf"), "HF_EVALUATE_OFFLINE": "1"}
    code = textwrap.dedent("""
        import os, subprocess, sys
        import evaluate
        import u2s_datasets
        other = dict(os.environ, PYTHONPATH=os.environ["OTHER_SITE"])
        subprocess.run([sys.executable, "-c", "pass"], env=other, check=True)  # B's start-up hook runs last
        by_id, by_path = evaluate.load("u2s/privacy"), u2s_datasets.load_metric("privacy")
        for module in (by_id, by_path):
            print(sys.modules[type(module).__module__].INSTALL, sys.modules[type(module).__module__].__file__)
    """)
    lines = run_python(code, tmp_path, first, OTHER_SITE=second, **shared).strip().splitlines()[-2:]
    assert [line.split()[0] for line in lines] == ["A", "A"]
    assert lines[0].split()[1].startswith(first)  # the install's own script, not a copy in the shared cache


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
    # --use-pep517: without it, pip takes setuptools' legacy develop route whenever `wheel` is installed,
    # and that route builds in an isolated environment it cannot fill offline.
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--use-pep517",
                    "--ignore-installed", "-e", REPO], check=True, env=env, cwd=str(tmp_path))
    script = textwrap.dedent("""
        import sys
        import evaluate
        assert "u2s_datasets" not in sys.modules
        modules = [evaluate.load("u2s/" + name) for name in ("privacy", "quality", "cheating", "utility")]
        print(sys.modules[type(modules[0]).__module__].__file__)
        print(",".join(type(m).__name__ for m in modules))
        import skimage.data
        face = skimage.data.astronaut()
        print(modules[2].compute(predictions=[face], references=[face], clip=False)["ssim"])
    """)
    done = subprocess.run([python, "-c", script], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    script, names, ssim = done.stdout.strip().splitlines()[-3:]
    assert names == "Privacy,Quality,Cheating,Utility"
    assert script == os.path.join(REPO, "metrics", "privacy", "privacy.py")  # the install's own, through the loader
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
