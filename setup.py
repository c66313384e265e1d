"""Packaging for tfp_emerging: invertible convolutions for TensorFlow Probability."""
import setuptools

setuptools.setup(
    name="tfp_emerging",
    version="0.1.0",
    description=("Emerging, periodic and 1x1 invertible convolutions as "
                 "TensorFlow Probability bijectors, and Glow-style image flows."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tfp_emerging", "tfp_emerging.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.18",
        "tensorflow-probability>=0.25",
        "tf-keras",
        "numpy",
        "scikit-learn",
        "scikit-image",
    ],
    extras_require={
        "test": [
            "pytest",
            "scipy",
            "matplotlib",
            "nbclient",
            "nbformat",
            "ipykernel",
            "tensorflow-datasets",  # tests of real builders with mock_data
            "pillow",  # palette PNGs in tests/test_data.py
            "tensorboard",  # --tensorboard in tests/test_training.py
            "hypothesis",  # property-based tests of every bijector
            "pytest-xdist",  # make test: one worker per core
            # make docs and tests/integration/test_docs.py: the site builds
            "mkdocs",
            "mkdocs-material",
            "mkdocstrings[python]",
            "mkdocs-jupyter",
            "jupytext",  # colab/*.py, the notebooks' one source
            "nbconvert",
            "markdown-it-py",  # tests/integration/test_doc_examples.py
        ],
        "datasets": ["tensorflow-datasets"],
        "tensorboard": ["tensorboard"],
    },
    entry_points={"console_scripts": ["tfp-emerging=tfp_emerging.cli:main"]},
)
