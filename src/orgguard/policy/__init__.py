"""The policy: its vocabulary, its Casbin encoding, its files and its index."""
