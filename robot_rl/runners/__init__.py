"""Training loops: collect -> update -> log -> evaluate -> checkpoint."""
