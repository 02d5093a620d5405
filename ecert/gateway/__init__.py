"""The national interface (国家医保接口, spec §8): one envelope, national names, §7 services."""
