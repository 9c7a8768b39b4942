"""A fixed, deterministic sentence set for the MiniLM-L6 embedding benchmark.

Sentences are templates filled with subjects and objects from small word lists (no data files):
``product(templates, subjects, objects)`` is walked with a stride coprime to its size, so the
selection mixes every template and word. The first ``calib`` sentences calibrate, the next
``count`` are evaluated (disjoint sets).
"""

from __future__ import annotations

import math

TEMPLATES = (
    "{s} is looking at {o} in the morning.",
    "Yesterday {s} bought {o} at the market.",
    "Why would {s} ever sell {o}?",
    "{s} wrote a long report about {o}.",
    "The photo shows {s} standing next to {o}.",
    "Nobody expected {s} to repair {o} so quickly.",
    "{s} has been dreaming about {o} for years.",
    "Please tell {s} that {o} is broken again.",
    "According to the news, {s} lost {o} during the storm.",
    "{s} carefully painted {o} bright red.",
    "It is unclear whether {s} still owns {o}.",
    "After dinner {s} talked for hours about {o}.",
)
SUBJECTS = (
    "a young doctor",
    "the old fisherman",
    "my neighbour",
    "the football team",
    "a famous singer",
    "the city council",
    "our teacher",
    "a tired student",
    "the software engineer",
    "her grandmother",
    "the police officer",
    "a small child",
    "the research group",
    "his best friend",
    "the bakery owner",
    "a travelling monk",
)
OBJECTS = (
    "a red bicycle",
    "the quantum computer",
    "an ancient map",
    "the kitchen table",
    "a basket of apples",
    "the new stadium",
    "a broken violin",
    "the stock market",
    "a wooden boat",
    "the mountain cabin",
    "a pair of shoes",
    "the chess tournament",
    "an electric guitar",
    "the garden fence",
    "a stack of letters",
    "the night train",
)


def sentences(count: int, offset: int = 0) -> list[str]:
    """``count`` distinct sentences starting at position ``offset`` of the fixed walk."""
    total = len(TEMPLATES) * len(SUBJECTS) * len(OBJECTS)
    stride = next(p for p in range(97, total) if math.gcd(p, total) == 1)
    picked = []
    for i in range(offset, offset + count):
        k = (i * stride) % total
        template = TEMPLATES[k % len(TEMPLATES)]
        k //= len(TEMPLATES)
        subject, obj = SUBJECTS[k % len(SUBJECTS)], OBJECTS[k // len(SUBJECTS)]
        text = template.format(s=subject, o=obj)
        picked.append(text[0].upper() + text[1:])
    return picked


def calibration_and_eval(calib: int = 64, count: int = 240) -> tuple[list[str], list[str]]:
    """Disjoint calibration and evaluation sentence lists."""
    return sentences(calib), sentences(count, offset=calib)
