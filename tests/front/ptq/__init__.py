"""Tests of qdqforge.front.ptq: AdaRound sites and warnings, calibration progress."""
