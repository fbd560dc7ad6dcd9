"""Doctest globals: docstring examples may use `npgpt`, `np` and `enc` (GPT-2) without importing."""

import numpy as np
import pytest

import npgpt


@pytest.fixture(autouse=True)
def _doctest_globals(doctest_namespace):
    doctest_namespace.update(npgpt=npgpt, np=np, enc=npgpt.get_encoding("gpt2"), Encoding=npgpt.Encoding)
