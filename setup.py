"""Package ``toolkit``: audio-language pretraining of general-purpose audio encoders."""

from setuptools import find_packages, setup

setup(
    name="toolkit",
    version="0.1.0",
    description="Audio-language pretraining (contrastive/captioning) of general-purpose audio encoders",
    packages=find_packages(include=["toolkit", "toolkit.*"]),
    package_data={"toolkit.evaluate": ["*.yaml", "*.tsv"]},  # QA templates
    python_requires=">=3.10",
    # torch is deliberately not pinned here: tools/install.sh installs the right build (CPU wheel
    # without CUDA) first, and a bare "torch" requirement would let pip pull a CUDA build.
    install_requires=[
        "lhotse>=1.24",
        "urllib3>=1.26",  # lhotse imports it at import time without declaring it (lhotse 1.33)
        "sentencepiece>=0.1.99",
        "tensorboard>=2.10",
        "pyyaml>=6",
        "soundfile>=0.12",
        "matplotlib>=3.6",
        "numpy>=1.24",
        "tqdm>=4.60",
        "safetensors>=0.4",  # exported and released model weights (no torch dependency)
    ],
    extras_require={
        # metrics: captioning metrics (BLEU/METEOR/ROUGE-L/CIDEr-D/SPICE); needs Java, no torch
        "metrics": ["pycocoevalcap>=1.2"],
        # hf: Hugging Face text towers/tokenizers from local folders (toolkit/text/hf.py); no torch
        "hf": ["transformers>=4.40"],
        "dev": [
            "pytest>=7",
            "pytest-timeout>=2",
            "ruff>=0.5",
            "pycocoevalcap>=1.2",
            "transformers>=4.40",
            "scikit-learn>=1.2",  # reference average precision in the metric tests
        ],
        "gpu": ["torchaudio"],
    },
    entry_points={
        "console_scripts": [
            "toolkit-train=toolkit.bin.train:cli",
            "toolkit-evaluate=toolkit.bin.evaluate:cli",
            "toolkit-validate=toolkit.bin.validate:cli",
            "toolkit-tokenizer=toolkit.bin.train_tokenizer:cli",
            "toolkit-stats=toolkit.bin.compute_stats:cli",
            "toolkit-prepare-demo=toolkit.data.prepare.demo:main",
            "toolkit-describe=toolkit.bin.describe:cli",
            "toolkit-label-vocab=toolkit.bin.label_vocab:cli",
            "toolkit-extract=toolkit.bin.extract:cli",
            "toolkit-compare=toolkit.bin.compare:cli",
            "toolkit-config-get=toolkit.bin.config_get:cli",
            "toolkit-prepare=toolkit.bin.prepare:cli",
            "toolkit-aggregate=toolkit.bin.aggregate:cli",
            "toolkit-report=toolkit.bin.report:cli",
            "toolkit-study=toolkit.bin.study:main",
            "toolkit-average=toolkit.bin.average:cli",
            "toolkit-export=toolkit.bin.export:cli",
            "toolkit-zeroshot=toolkit.bin.zeroshot:cli",
            "toolkit-caption=toolkit.bin.caption:cli",
            "toolkit-index=toolkit.bin.index:cli",
            "toolkit-search=toolkit.bin.search:cli",
        ]
    },
)
