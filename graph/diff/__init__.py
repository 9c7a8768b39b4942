"""The graph diff viewer: match two graphs node by node, compare, write JSON or one HTML page."""
