"""Media helpers: frame clips, images, video probing and decoding, LUTs, uploads, safe file access."""
