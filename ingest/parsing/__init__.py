"""Documents to text: type detection, the parsers, OCR, their bounds, and the pool that runs them."""
