"""Calibration algorithms and their observers: IFMR, HFMG, DMQ, AdaRound; merged over ranks."""
