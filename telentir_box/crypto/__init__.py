"""Key material: the master key and sealing, RSA server keypairs, strict encodings."""
