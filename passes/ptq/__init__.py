"""PTQ passes: DMQ statistics and balancing, activation observers, ARQ and AdaRound weights."""
