"""Running untrusted code: the parent side (`runner`) and the locked-down child (`child`)."""
