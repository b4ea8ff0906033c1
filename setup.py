"""The one part of the build pyproject.toml cannot say: the scenario catalogue.

The catalogue lives in the top-level ``scenarios/`` folder of the repository and ships inside
the package as ``lab/scenarios/`` (a package-dir mapping), so ``mtasts-lab run`` finds it
wherever the lab is installed. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["lab", "lab.*", "fake_dns", "fake_dns.*"]),
              "lab.scenarios"],
    package_dir={"lab.scenarios": "scenarios"},
)
