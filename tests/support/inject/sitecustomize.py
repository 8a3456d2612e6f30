"""Imported by Python at the start of every process with this folder on its PYTHONPATH: installs the tests' phase
hooks that the environment asks for (``tests/support/faults.py``). Without those variables it does nothing."""

from tests.support.faults import install_from_env

install_from_env()
