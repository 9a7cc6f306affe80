"""P2-Protection: the poisoning round that removes membership information from a finished FL model."""
