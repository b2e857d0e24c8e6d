"""Training framework: configs, networks, losses, data, loop."""
