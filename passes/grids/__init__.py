"""Not passes: a quantized layer's activation, weight and int32 bias grids, from its record."""
