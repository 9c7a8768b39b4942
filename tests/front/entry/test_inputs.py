"""normalize_input_data: tensors and tuples pass, everything else is a TypeError naming it."""

from __future__ import annotations

import pytest
import torch

from qdqforge.errors import InputDataError
from qdqforge.front.entry.inputs import normalize_input_data


def test_single_tensor_becomes_one_tuple():
    x = torch.zeros(2, 3)
    result = normalize_input_data(x)
    assert isinstance(result, tuple) and len(result) == 1 and result[0] is x


def test_tuple_of_tensors_is_returned_as_is():
    args = (torch.zeros(1), torch.ones(2))
    assert normalize_input_data(args) is args


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([torch.zeros(1)], "received list of 1; pass tuple(input_data)"),
        ({"x": torch.zeros(1)}, "received dict with keys ['x']"),
        (None, "received None"),
        ((torch.zeros(1), 3), "item 1 is int (3)"),
        ((), "received an empty tuple"),
        ("image.png", "received str ('image.png')"),
    ],
    ids=["list", "dict", "none", "tuple-with-int", "empty-tuple", "str"],
)
def test_bad_input_data_says_what_was_received(value, fragment):
    with pytest.raises(InputDataError) as info:
        normalize_input_data(value)
    assert isinstance(info.value, TypeError)
    message = str(info.value)
    assert fragment in message
    assert "a torch.Tensor or a tuple of torch.Tensor" in message
