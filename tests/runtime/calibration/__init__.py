"""Tests of qdqforge.runtime.calibration: IFMR, HFMG, DMQ, AdaRound against numpy."""
